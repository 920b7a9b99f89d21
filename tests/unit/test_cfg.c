/*
 * test_cfg.c: unit tests for cfg.c, the parser of /etc/llmq.yaml.
 *
 * A standalone program that prints TAP ("ok N - ...", "not ok N - ...")
 * and a last line "# N passed, M failed", and exits non-zero when a test
 * failed.  Error tests compare the whole message, so that a change in
 * the line, the column or the key path is caught.  The sample
 * configuration is loaded from argv[1], or from $LLMQ_SRCDIR/etc/llmq.yaml.
 */
#include "config.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cfg.h"
#include "util.h"

#include "tap.h"

static void
skip(const char *why)
{
	ntest++;
	npass++;
	printf("ok %d # skip %s\n", ntest, why);
}

/* A configuration with only what is required, for the error tests. */
#define HEAD "database: db\n"
#define PROV                                                                   \
	"providers:\n"                                                         \
	"  local: { kind: ollama, url: \"http://h:1\" }\n"
#define MODELS                                                                 \
	"models:\n"                                                            \
	"  m1: { provider: local }\n"
#define ROLES                                                                  \
	"roles:\n"                                                             \
	"  r1:\n"                                                              \
	"    model: m1\n"
#define MINIMAL HEAD PROV MODELS ROLES

/* Load text and compare the error message with want exactly. */
static void
expect_err(const char *desc, const char *text, const char *want)
{
	struct cfg *c;
	char err[512] = "";

	c = cfg_load_string("t.yaml", text, err, sizeof(err));
	CHECK(c == NULL && strcmp(err, want) == 0, "%s", desc);
	if (c != NULL || strcmp(err, want) != 0)
		printf("#   want: %s\n#   got:  %s\n", want,
		    c != NULL ? "(loaded)" : err);
	cfg_free(c);
}

static void
test_durations(void)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{ "100ms", 100 },
		{ "60s", 60000 },
		{ "5m", 300000 },
		{ "2h", 7200000 },
		{ "90d", 7776000000LL },
		{ "30", 30000 },
		{ "0", 0 },
		{ "0ms", 0 },
		{ "1ms", 1 },
	};
	static const char *bad[] = {
		"",
		"-5s",
		"1.5s",
		"5 minutes",
		"5x",
		"s",
		"ms",
		"5sec",
		"5S",
		" 5s",
		"5s ",
		"+5s",
		"9223372036854775807s",
		"99999999999999999999",
		"1e3",
		"0x10",
	};
	int64_t ms;
	size_t i;

	for (i = 0; i < nitems(good); i++) {
		ms = -1;
		CHECK(
		    cfg_parse_duration(good[i].s, &ms) == 0 && ms == good[i].ms,
		    "duration \"%s\" is %lld ms", good[i].s,
		    (long long)good[i].ms);
	}
	for (i = 0; i < nitems(bad); i++)
		CHECK(cfg_parse_duration(bad[i], &ms) == -1,
		    "duration \"%s\" is refused", bad[i]);
}

static void
test_complexity(void)
{
	CHECK(strcmp(cfg_complexity_name(CX_SIMPLE), "simple") == 0 &&
	        strcmp(cfg_complexity_name(CX_MEDIUM), "medium") == 0 &&
	        strcmp(cfg_complexity_name(CX_COMPLEX), "complex") == 0,
	    "complexity names");
	CHECK(cfg_complexity_parse("simple") == CX_SIMPLE &&
	        cfg_complexity_parse("medium") == CX_MEDIUM &&
	        cfg_complexity_parse("complex") == CX_COMPLEX &&
	        cfg_complexity_parse("hard") == -1 &&
	        cfg_complexity_parse("") == -1,
	    "complexity parse");
}

static const char full[] =
    "# every key\n"
    "database: \"host=/tmp dbname=app\"\n"
    "user: llmq\n"
    "pidfile: /var/run/x.pid\n"
    "log: /var/log/llmq.log\n"
    "log_level: debug\n"
    "poll_interval: 250ms\n"
    "batch_size: 20\n"
    "lease: 2m\n"
    "shutdown_timeout: 0\n"
    "retention: 7d\n"
    "crash_limit: 3\n"
    "crash_window: 2m\n"
    "limits:\n"
    "  global: 6\n"
    "providers:\n"
    "  local:\n"
    "    kind: ollama\n"
    "    url: http://127.0.0.1:11434//\n"
    "    timeout: 90s\n"
    "    connect_timeout: 2s\n"
    "    concurrency: 8\n"
    "    max_response: 512k\n"
    "  cloud:\n"
    "    kind: openai\n"
    "    url: https://api.example.com/v1\n"
    "    api_key_env: LLMQ_TEST_KEY\n"
    "models:\n"
    "  \"qwen3:4b\": { provider: local, fallback: \"qwen3:8b\" }\n"
    "  \"qwen3:8b\": { provider: local, concurrency: 1 }\n"
    "  qwen2:1.5b: { provider: local }\n"
    "  gpt: { provider: cloud }\n"
    "roles:\n"
    "  planner:\n"
    "    processes: 2\n"
    "    concurrency: 4\n"
    "    model: \"qwen3:4b\"\n"
    "    timeout: 30s\n"
    "    max_attempts: 5\n"
    "  executor_2:\n"
    "    model:\n"
    "      simple: \"qwen2:1.5b\"\n"
    "      complex: gpt\n"
    "consumer:\n"
    "  metrics_file: /var/lib/llmq.prom\n"
    "  interval: 5s\n";

static void
test_full(void)
{
	const struct cfg_role *r;
	struct cfg *c;
	char err[512] = "";

	setenv("LLMQ_TEST_KEY", "sk-test-123", 1);
	c = cfg_load_string("full.yaml", full, err, sizeof(err));
	CHECK(c != NULL, "full config loads");
	if (c == NULL) {
		printf("#   %s\n", err);
		return;
	}
	CHECK(strcmp(c->path, "full.yaml") == 0, "path kept");
	CHECK(strcmp(c->database, "host=/tmp dbname=app") == 0 &&
	        strcmp(c->user, "llmq") == 0 &&
	        strcmp(c->pidfile, "/var/run/x.pid") == 0 &&
	        strcmp(c->log, "/var/log/llmq.log") == 0 &&
	        c->log_level == LOG_DEBUG,
	    "full: strings and log level");
	CHECK(c->poll_interval_ms == 250 && c->batch_size == 20 &&
	        c->lease_ms == 120000 && c->shutdown_timeout_ms == 0 &&
	        c->retention_ms == 7 * 86400000LL && c->crash_limit == 3 &&
	        c->crash_window_ms == 120000 && c->limit_global == 6,
	    "full: numbers and durations");
	CHECK(c->nproviders == 2 &&
	        strcmp(c->providers[0].name, "local") == 0 &&
	        c->providers[0].kind == PROV_OLLAMA &&
	        strcmp(c->providers[0].url, "http://127.0.0.1:11434") == 0 &&
	        c->providers[0].timeout_ms == 90000 &&
	        c->providers[0].connect_timeout_ms == 2000 &&
	        c->providers[0].concurrency == 8 &&
	        c->providers[0].max_response == 512 * 1024 &&
	        c->providers[0].api_key == NULL,
	    "full: provider local, trailing slashes stripped");
	CHECK(strcmp(c->providers[1].name, "cloud") == 0 &&
	        c->providers[1].kind == PROV_OPENAI &&
	        strcmp(c->providers[1].url, "https://api.example.com/v1") ==
	            0 &&
	        c->providers[1].timeout_ms == 60000 &&
	        c->providers[1].connect_timeout_ms == 5000 &&
	        c->providers[1].concurrency == 0 &&
	        c->providers[1].max_response == 8 * 1024 * 1024 &&
	        c->providers[1].api_key != NULL &&
	        strcmp(c->providers[1].api_key, "sk-test-123") == 0,
	    "full: provider cloud, defaults, key from api_key_env");
	CHECK(c->nmodels == 4 && strcmp(c->models[0].name, "qwen3:4b") == 0 &&
	        c->models[0].provider == 0 && c->models[0].fallback == 1 &&
	        c->models[0].concurrency == 0 &&
	        strcmp(c->models[1].name, "qwen3:8b") == 0 &&
	        c->models[1].fallback == -1 && c->models[1].concurrency == 1 &&
	        strcmp(c->models[2].name, "qwen2:1.5b") == 0 &&
	        c->models[3].provider == 1,
	    "full: models, provider and fallback indexes");
	CHECK(cfg_model_find(c, "qwen3:8b") == 1 &&
	        cfg_model_find(c, "gpt") == 3 &&
	        cfg_model_find(c, "nope") == -1,
	    "cfg_model_find");
	r = cfg_role_find(c, "planner");
	CHECK(c->nroles == 2 && r == &c->roles[0] && r->processes == 2 &&
	        r->concurrency == 4 && r->model == 0 &&
	        r->by_complexity[CX_SIMPLE] == -1 &&
	        r->by_complexity[CX_MEDIUM] == -1 &&
	        r->by_complexity[CX_COMPLEX] == -1 && r->timeout_ms == 30000 &&
	        r->max_attempts == 5,
	    "full: role planner");
	r = cfg_role_find(c, "executor_2");
	CHECK(r == &c->roles[1] && r->processes == 1 && r->concurrency == 1 &&
	        r->model == -1 && r->by_complexity[CX_SIMPLE] == 2 &&
	        r->by_complexity[CX_MEDIUM] == -1 &&
	        r->by_complexity[CX_COMPLEX] == 3 && r->timeout_ms == 0 &&
	        r->max_attempts == 3,
	    "full: role executor_2, model by complexity, defaults");
	CHECK(cfg_role_find(c, "nope") == NULL, "cfg_role_find unknown");
	CHECK(strcmp(c->metrics_file, "/var/lib/llmq.prom") == 0 &&
	        c->consumer_interval_ms == 5000,
	    "full: consumer");
	cfg_free(c);
	unsetenv("LLMQ_TEST_KEY");
}

static void
test_defaults(void)
{
	struct cfg *c;
	char err[512] = "";

	c = cfg_load_string("min.yaml", MINIMAL, err, sizeof(err));
	CHECK(c != NULL, "minimal config loads");
	if (c == NULL) {
		printf("#   %s\n", err);
		return;
	}
	CHECK(c->user == NULL &&
	        strcmp(c->pidfile, RUNSTATEDIR "/llmq/llmqd.pid") == 0 &&
	        strcmp(c->log, "syslog") == 0 && c->log_level == LOG_INFO,
	    "defaults: user, pidfile, log, log_level");
	CHECK(c->poll_interval_ms == 100 && c->batch_size == 50 &&
	        c->lease_ms == 300000 && c->shutdown_timeout_ms == 30000 &&
	        c->retention_ms == 90 * 86400000LL && c->crash_limit == 5 &&
	        c->crash_window_ms == 60000 && c->limit_global == 0,
	    "defaults: intervals and limits");
	CHECK(c->providers[0].timeout_ms == 60000 &&
	        c->providers[0].connect_timeout_ms == 5000 &&
	        c->providers[0].concurrency == 0 &&
	        c->providers[0].max_response == 8 << 20 &&
	        c->providers[0].api_key == NULL &&
	        strcmp(c->providers[0].url, "http://h:1") == 0,
	    "defaults: provider");
	CHECK(c->models[0].fallback == -1 && c->models[0].concurrency == 0,
	    "defaults: model");
	CHECK(c->roles[0].processes == 1 && c->roles[0].concurrency == 1 &&
	        c->roles[0].model == 0 && c->roles[0].timeout_ms == 0 &&
	        c->roles[0].max_attempts == 3,
	    "defaults: role");
	CHECK(c->metrics_file == NULL && c->consumer_interval_ms == 1000,
	    "defaults: consumer");
	cfg_free(c);
	cfg_free(NULL);
	CHECK(1, "cfg_free(NULL) is a no-op");

	c = cfg_load_string(
	    "min.yaml", "limits:\nconsumer: ~\n" MINIMAL, err, sizeof(err));
	CHECK(c != NULL && c->limit_global == 0 && c->metrics_file == NULL,
	    "a section with no keys (null) is empty");
	if (c == NULL)
		printf("#   %s\n", err);
	cfg_free(c);
}

static void
test_errors(void)
{
	expect_err("unknown key in a role", MINIMAL "    concurency: 2\n",
	    "t.yaml:9:5: roles.r1.concurency: unknown key");
	expect_err("unknown top-level key", "databse: x\n" MINIMAL,
	    "t.yaml:1:1: databse: unknown key");
	expect_err("integer expected", MINIMAL "    processes: two\n",
	    "t.yaml:9:16: roles.r1.processes: expected an integer, got "
	    "\"two\"");
	expect_err("float is not an integer", "batch_size: 1.5\n" MINIMAL,
	    "t.yaml:1:13: batch_size: expected an integer, got \"1.5\"");
	expect_err("trailing junk in an integer", "batch_size: 5x\n" MINIMAL,
	    "t.yaml:1:13: batch_size: expected an integer, got \"5x\"");
	expect_err("boolean is not an integer", "batch_size: true\n" MINIMAL,
	    "t.yaml:1:13: batch_size: expected an integer, got \"true\"");
	expect_err("null is not an integer", "batch_size:\n" MINIMAL,
	    "t.yaml:1:12: batch_size: expected an integer, got null");
	expect_err("integer out of range", "batch_size: 0\n" MINIMAL,
	    "t.yaml:1:13: batch_size: must be between 1 and 10000, got 0");
	expect_err("huge integer out of range",
	    "batch_size: 99999999999999999999999\n" MINIMAL,
	    "t.yaml:1:13: batch_size: must be between 1 and 10000, got "
	    "99999999999999999999999");
	expect_err("processes out of range", MINIMAL "    processes: 65\n",
	    "t.yaml:9:16: roles.r1.processes: must be between 1 and 64, "
	    "got 65");
	expect_err("sequence where a mapping is expected",
	    HEAD PROV MODELS "roles:\n  - r1\n",
	    "t.yaml:7:3: roles: expected a mapping");
	expect_err("mapping where a scalar is expected",
	    "user: { name: x }\n" MINIMAL,
	    "t.yaml:1:7: user: expected a scalar");
	expect_err("sequence where a scalar is expected",
	    "lease: [1s]\n" MINIMAL, "t.yaml:1:8: lease: expected a scalar");
	expect_err("non-scalar key", "? [a]\n: b\n" MINIMAL,
	    "t.yaml:1:3: expected a scalar");
	expect_err("null string", "user: ~\n" MINIMAL,
	    "t.yaml:1:7: user: expected a string, got null");
	expect_err("missing database", "# comment\n" PROV MODELS ROLES,
	    "t.yaml:2:1: database: missing required key");
	expect_err(
	    "empty file", "", "t.yaml:1:1: database: missing required key");
	expect_err("only comments", "# nothing\n",
	    "t.yaml:1:1: database: missing required key");
	expect_err("missing roles", HEAD PROV MODELS,
	    "t.yaml:1:1: roles: missing required key");
	expect_err("empty roles", HEAD PROV MODELS "roles: {}\n",
	    "t.yaml:6:8: roles: at least one role is required");
	expect_err("null roles", HEAD PROV MODELS "roles:\n",
	    "t.yaml:6:7: roles: at least one role is required");
	expect_err("null provider body",
	    HEAD "providers:\n  local:\n" MODELS ROLES,
	    "t.yaml:3:9: providers.local.kind: missing required key");
	expect_err("missing provider url",
	    HEAD "providers:\n  local:\n    kind: ollama\n" MODELS ROLES,
	    "t.yaml:4:5: providers.local.url: missing required key");
	expect_err("missing model provider in a flow mapping",
	    HEAD PROV "models:\n  m1: { concurrency: 1 }\n" ROLES,
	    "t.yaml:5:7: models.m1.provider: missing required key");
	expect_err("missing role model",
	    HEAD PROV MODELS "roles:\n  r1:\n    processes: 1\n",
	    "t.yaml:8:5: roles.r1.model: missing required key");
	expect_err("bad duration",
	    HEAD "providers:\n  local:\n    kind: ollama\n    url: http://h\n"
	         "    timeout: 5 minutes\n" MODELS ROLES,
	    "t.yaml:6:14: providers.local.timeout: invalid duration "
	    "\"5 minutes\"");
	expect_err("negative duration", "lease: -1s\n" MINIMAL,
	    "t.yaml:1:8: lease: invalid duration \"-1s\"");
	expect_err("duration below its minimum", "lease: 500ms\n" MINIMAL,
	    "t.yaml:1:8: lease: must be at least 1s");
	expect_err("zero poll_interval", "poll_interval: 0\n" MINIMAL,
	    "t.yaml:1:16: poll_interval: must be greater than 0");
	expect_err("poll_interval above 1h", "poll_interval: 2h\n" MINIMAL,
	    "t.yaml:1:16: poll_interval: must be at most 1h");
	expect_err("unknown provider",
	    HEAD PROV "models:\n  \"qwen3:4b\": { provider: lokal }\n" ROLES,
	    "t.yaml:5:27: models.qwen3:4b.provider: unknown provider "
	    "\"lokal\"");
	expect_err("unknown fallback model",
	    HEAD PROV
	    "models:\n  m1: { provider: local, fallback: m9 }\n" ROLES,
	    "t.yaml:5:36: models.m1.fallback: unknown model \"m9\"");
	expect_err("model as its own fallback",
	    HEAD PROV
	    "models:\n  m1: { provider: local, fallback: m1 }\n" ROLES,
	    "t.yaml:5:36: models.m1.fallback: a model cannot be its own "
	    "fallback");
	expect_err("unknown role model",
	    HEAD PROV MODELS "roles:\n  r1:\n    model: m2\n",
	    "t.yaml:8:12: roles.r1.model: unknown model \"m2\"");
	expect_err("unknown complexity model",
	    HEAD PROV MODELS "roles:\n  r1:\n    model:\n      medium: m2\n",
	    "t.yaml:9:15: roles.r1.model.medium: unknown model \"m2\"");
	expect_err("unknown complexity",
	    HEAD PROV MODELS "roles:\n  r1:\n    model:\n      hard: m1\n",
	    "t.yaml:9:7: roles.r1.model.hard: unknown key");
	expect_err("empty complexity mapping",
	    HEAD PROV MODELS "roles:\n  r1:\n    model: {}\n",
	    "t.yaml:8:12: roles.r1.model: expected a model name, or at least "
	    "one of simple, medium and complex");
	expect_err("bad role name (upper case)",
	    HEAD PROV MODELS "roles:\n  Planner:\n    model: m1\n",
	    "t.yaml:7:3: roles.Planner: invalid role name \"Planner\" "
	    "(expected [a-z][a-z0-9_]*, at most 40 characters)");
	expect_err("bad role name (41 characters)",
	    HEAD PROV MODELS
	    "roles:\n  abcdefghijabcdefghijabcdefghijabcdefghijx:\n"
	    "    model: m1\n",
	    "t.yaml:7:3: roles.abcdefghijabcdefghijabcdefghijabcdefghijx: "
	    "invalid role name \"abcdefghijabcdefghijabcdefghijabcdefghijx\" "
	    "(expected [a-z][a-z0-9_]*, at most 40 characters)");
	expect_err("bad role name (dash)",
	    HEAD PROV MODELS "roles:\n  my-role:\n    model: m1\n",
	    "t.yaml:7:3: roles.my-role: invalid role name \"my-role\" "
	    "(expected [a-z][a-z0-9_]*, at most 40 characters)");
	expect_err("syntax error", HEAD "roles: [a\n",
	    "t.yaml:3:1: syntax error: did not find expected ',' or ']' "
	    "(while parsing a flow sequence)");
	expect_err("syntax error: bad indentation", "database: x\n  user: y\n",
	    "t.yaml:2:7: syntax error: mapping values are not allowed in "
	    "this context");
	expect_err("syntax error: undefined alias", "database: *x\n",
	    "t.yaml:1:11: syntax error: found undefined alias");
	expect_err("syntax error: bad UTF-8", HEAD "user: \xff\n" MINIMAL,
	    "t.yaml:2:7: syntax error: invalid leading UTF-8 octet");
	expect_err("url without a host",
	    HEAD "providers:\n  local: { kind: ollama, url: "
	         "\"http:///\" }\n" MODELS ROLES,
	    "t.yaml:3:31: providers.local.url: expected an http:// or "
	    "https:// URL, got \"http:///\"");
	expect_err("two documents", MINIMAL "---\ndatabase: y\n",
	    "t.yaml:10:1: expected a single YAML document");
	expect_err("duplicate top-level key", MINIMAL "database: x\n",
	    "t.yaml:9:1: database: duplicate key");
	expect_err("duplicate role key", MINIMAL "    model: m1\n",
	    "t.yaml:9:5: roles.r1.model: duplicate key");
	expect_err("duplicate model",
	    HEAD PROV "models:\n  m1: { provider: local }\n  m1: { "
	              "provider: local }\n" ROLES,
	    "t.yaml:6:3: models.m1: duplicate key");
	expect_err("duplicate role", MINIMAL "  r1:\n    model: m1\n",
	    "t.yaml:9:3: roles.r1: duplicate key");
	expect_err("concurrency below processes",
	    MINIMAL "    processes: 3\n    concurrency: 2\n",
	    "t.yaml:10:18: roles.r1.concurrency: concurrency must be at "
	    "least processes (3)");
	expect_err("default concurrency below processes",
	    MINIMAL "    processes: 2\n",
	    "t.yaml:9:16: roles.r1.concurrency: concurrency must be at "
	    "least processes (2)");
	expect_err("bad provider kind",
	    HEAD
	    "providers:\n  local: { kind: llama, url: \"http://h\" }\n" MODELS
	        ROLES,
	    "t.yaml:3:18: providers.local.kind: unknown provider kind "
	    "\"llama\" (expected ollama or openai)");
	expect_err("bad provider url",
	    HEAD
	    "providers:\n  local: { kind: ollama, url: \"ftp://h\" }\n" MODELS
	        ROLES,
	    "t.yaml:3:31: providers.local.url: expected an http:// or "
	    "https:// URL, got \"ftp://h\"");
	expect_err("bad size",
	    HEAD "providers:\n  local: { kind: ollama, url: \"http://h\", "
	         "max_response: 8 MB }\n" MODELS ROLES,
	    "t.yaml:3:57: providers.local.max_response: invalid size "
	    "\"8 MB\"");
	expect_err("bad log target", "log: syslogd\n" MINIMAL,
	    "t.yaml:1:6: log: expected syslog, stderr or an absolute path, "
	    "got \"syslogd\"");
	expect_err("bad log level", "log_level: loud\n" MINIMAL,
	    "t.yaml:1:12: log_level: unknown log level \"loud\" (expected "
	    "error, warning, notice, info or debug)");
	expect_err("relative pidfile", "pidfile: llmqd.pid\n" MINIMAL,
	    "t.yaml:1:10: pidfile: expected an absolute path, got "
	    "\"llmqd.pid\"");
	expect_err("control bytes in a value are refused",
	    "log: \"a\\nb\"\n" MINIMAL,
	    "t.yaml:1:6: log: contains a control character");
	expect_err("unknown key under limits", "limits:\n  globl: 1\n" MINIMAL,
	    "t.yaml:2:3: limits.globl: unknown key");
	expect_err("zero consumer interval",
	    MINIMAL "consumer:\n  interval: 0\n",
	    "t.yaml:10:13: consumer.interval: must be greater than 0");
	expect_err("recursive alias", HEAD PROV MODELS "roles: &r\n  r1: *r\n",
	    "t.yaml:7:3: roles.r1.r1: unknown key");
	expect_err("api_key_env not set",
	    HEAD "providers:\n  local: { kind: openai, url: \"http://h\", "
	         "api_key_env: LLMQ_TEST_UNSET }\n" MODELS ROLES,
	    "t.yaml:3:56: providers.local.api_key_env: environment variable "
	    "\"LLMQ_TEST_UNSET\" is not set");
}

/* llmqctl's load: API keys are neither read nor required. */
static void
test_no_secrets(void)
{
	char path[] = "/tmp/llmq-test-cfg.XXXXXX", err[512] = "";
	const char *text =
	    HEAD "providers:\n  local: { kind: openai, url: \"http://h\", "
	         "api_key_env: LLMQ_TEST_UNSET }\n" MODELS ROLES;
	struct cfg *c;
	int fd;

	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		CHECK(0, "create a config file");
		return;
	}
	close(fd);
	c = cfg_load(path, err, sizeof(err));
	CHECK(c == NULL && strstr(err, "LLMQ_TEST_UNSET") != NULL,
	    "cfg_load requires the key's variable");
	cfg_free(c);
	c = cfg_load_flags(path, CFG_NO_SECRETS, err, sizeof(err));
	CHECK(c != NULL && c->providers[0].api_key == NULL,
	    "CFG_NO_SECRETS loads without reading the key");
	if (c == NULL)
		printf("#   %s\n", err);
	cfg_free(c);
	unlink(path);
}

static void
test_files(void)
{
	char tmpl[] = "/tmp/llmq-test-key.XXXXXX";
	char ctmpl[] = "/tmp/llmq-test-cfg.XXXXXX";
	char err[512] = "", want[512], *text;
	struct cfg *c;
	int fd;

	if ((fd = mkstemp(tmpl)) == -1 ||
	    write(fd, "sk-secret-42 \n\n", 15) != 15) {
		CHECK(0, "create a key file");
		return;
	}
	close(fd);
	text = xasprintf(HEAD "providers:\n  cloud:\n    kind: openai\n"
	                      "    url: https://h/v1/\n    api_key_file: %s\n"
	                      "models:\n  m1: { provider: cloud }\n" ROLES,
	    tmpl);

	chmod(tmpl, 0644);
	c = cfg_load_string("t.yaml", text, err, sizeof(err));
	snprintf(want, sizeof(want),
	    "t.yaml:6:19: providers.cloud.api_key_file: api_key_file \"%s\" "
	    "is readable by group or others",
	    tmpl);
	CHECK(c == NULL && strcmp(err, want) == 0,
	    "api_key_file with mode 0644 is refused");
	if (c != NULL || strcmp(err, want) != 0)
		printf("#   want: %s\n#   got:  %s\n", want, err);
	CHECK(strstr(err, "sk-secret") == NULL, "the key is not in the error");
	cfg_free(c);

	chmod(tmpl, 0640);
	c = cfg_load_string("t.yaml", text, err, sizeof(err));
	CHECK(c == NULL, "api_key_file with mode 0640 is refused");
	cfg_free(c);

	chmod(tmpl, 0600);
	c = cfg_load_string("t.yaml", text, err, sizeof(err));
	CHECK(c != NULL && c->providers[0].api_key != NULL &&
	        strcmp(c->providers[0].api_key, "sk-secret-42") == 0 &&
	        strcmp(c->providers[0].url, "https://h/v1") == 0,
	    "api_key_file with mode 0600 is read, white space stripped");
	if (c == NULL)
		printf("#   %s\n", err);
	cfg_free(c);

	setenv("LLMQ_TEST_KEY", "x", 1);
	free(text);
	text = xasprintf(HEAD "providers:\n  cloud:\n    kind: openai\n"
	                      "    url: https://h\n    api_key_file: %s\n"
	                      "    api_key_env: LLMQ_TEST_KEY\n"
	                      "models:\n  m1: { provider: cloud }\n" ROLES,
	    tmpl);
	expect_err("api_key_file and api_key_env together", text,
	    "t.yaml:7:5: providers.cloud.api_key_env: api_key_file and "
	    "api_key_env are mutually exclusive");
	unsetenv("LLMQ_TEST_KEY");
	free(text);

	unlink(tmpl);
	text = xasprintf(HEAD "providers:\n  cloud:\n    kind: openai\n"
	                      "    url: https://h\n    api_key_file: %s\n"
	                      "models:\n  m1: { provider: cloud }\n" ROLES,
	    tmpl);
	snprintf(want, sizeof(want),
	    "t.yaml:6:19: providers.cloud.api_key_file: could not open "
	    "\"%s\": No such file or directory",
	    tmpl);
	expect_err("missing api_key_file", text, want);
	free(text);

	/* cfg_load from a file, and its own errors. */
	c = cfg_load("/nonexistent/llmq.yaml", err, sizeof(err));
	CHECK(c == NULL &&
	        strcmp(err,
	            "could not open "
	            "\"/nonexistent/llmq.yaml\": No such file or directory") ==
	            0,
	    "missing file");
	c = cfg_load("/tmp", err, sizeof(err));
	CHECK(c == NULL &&
	        strcmp(err, "could not read \"/tmp\": Is a directory") == 0,
	    "directory");
	if ((fd = mkstemp(ctmpl)) == -1 ||
	    write(fd, MINIMAL, strlen(MINIMAL)) != (ssize_t)strlen(MINIMAL)) {
		CHECK(0, "create a config file");
		return;
	}
	close(fd);
	c = cfg_load(ctmpl, err, sizeof(err));
	CHECK(c != NULL && strcmp(c->path, ctmpl) == 0 && c->nroles == 1,
	    "cfg_load reads a file");
	cfg_free(c);
	if ((fd = open(ctmpl, O_WRONLY | O_APPEND)) != -1) {
		if (write(fd, "  r2: [\n", 8) != 8)
			CHECK(0, "append to a config file");
		close(fd);
	}
	c = cfg_load(ctmpl, err, sizeof(err));
	snprintf(want, sizeof(want),
	    "%s:10:1: syntax error: did not find "
	    "expected node content (while parsing a flow node)",
	    ctmpl);
	CHECK(c == NULL && strcmp(err, want) == 0,
	    "a syntax error names the file");
	if (c != NULL || strcmp(err, want) != 0)
		printf("#   want: %s\n#   got:  %s\n", want, err);
	cfg_free(c);
	unlink(ctmpl);
}

static void
test_sample(const char *arg)
{
	const char *dir;
	char *path = NULL, err[512] = "";
	struct cfg *c;

	if (arg != NULL)
		path = xstrdup(arg);
	else if ((dir = getenv("LLMQ_SRCDIR")) != NULL)
		path = xasprintf("%s/etc/llmq.yaml", dir);
	if (path == NULL) {
		skip("sample etc/llmq.yaml: no path given");
		return;
	}
	c = cfg_load(path, err, sizeof(err));
	CHECK(c != NULL, "sample %s loads%s%s", path, c == NULL ? ": " : "",
	    c == NULL ? err : "");
	if (c == NULL)
		printf("#   %s\n", err);
	else
		CHECK(c->nroles >= 1 && cfg_role_find(c, "planner") != NULL &&
		        c->poll_interval_ms == 100 && c->batch_size == 50 &&
		        c->limit_global == 6,
		    "sample has the values of DESIGN.md");
	cfg_free(c);
	free(path);
}

/* roles.R.stream and roles.R.cache, and the routes the cache keys by. */
static void
test_stream_cache(void)
{
	struct cfg *c;
	char err[512] = "", *routes;
	const struct cfg_role *r;

	c = cfg_load_string("t.yaml",
	    HEAD PROV
	    "models:\n"
	    "  m1: { provider: local }\n"
	    "  \"q\\\"x\": { provider: local }\n"
	    "roles:\n"
	    "  a: { model: m1, stream: yes, cache: true }\n"
	    "  b: { model: { simple: m1, complex: \"q\\\"x\" }, cache: 10m,\n"
	    "       stream: Off }\n"
	    "  c: { model: m1, cache: false, allow_models: [\"q\\\"x\"] }\n",
	    err, sizeof(err));
	CHECK(c != NULL, "stream and cache load%s%s", c == NULL ? ": " : "",
	    c == NULL ? err : "");
	if (c == NULL)
		return;
	r = cfg_role_find(c, "a");
	CHECK(r->stream == 1 && r->cache_ttl_ms == 3600000,
	    "stream: yes, cache: true is an hour");
	r = cfg_role_find(c, "b");
	CHECK(r->stream == 0 && r->cache_ttl_ms == 600000,
	    "stream: Off, cache: 10m");
	routes = cfg_role_routes(c, r);
	CHECK(strcmp(routes,
	          "{\"default\":\"m1\",\"simple\":\"m1\","
	          "\"complex\":\"q\\\"x\",\"allow\":[]}") == 0,
	    "routes by complexity, the default is the first set: %s", routes);
	free(routes);
	r = cfg_role_find(c, "c");
	CHECK(r->stream == 0 && r->cache_ttl_ms == 0, "defaults: off");
	routes = cfg_role_routes(c, r);
	CHECK(strcmp(routes,
	          "{\"default\":\"m1\",\"allow\":[\"q\\\"x\"]}") == 0,
	    "routes with allowed models, names escaped: %s", routes);
	free(routes);
	cfg_free(c);

	expect_err("stream is a boolean", MINIMAL "    stream: maybe\n",
	    "t.yaml:9:13: roles.r1.stream: expected true or false, got "
	    "\"maybe\"");
	expect_err("a cache under a second", MINIMAL "    cache: 500ms\n",
	    "t.yaml:9:12: roles.r1.cache: must be at least 1s");
	expect_err("cache is a boolean or a duration", MINIMAL "    cache: 5x\n",
	    "t.yaml:9:12: roles.r1.cache: invalid duration \"5x\"");
	expect_err("cache is not a word", MINIMAL "    cache: always\n",
	    "t.yaml:9:12: roles.r1.cache: expected true or false, got "
	    "\"always\"");
}

int
main(int argc, char **argv)
{
	unsetenv("LLMQ_TEST_UNSET");
	test_durations();
	test_complexity();
	test_full();
	test_defaults();
	test_errors();
	test_stream_cache();
	test_files();
	test_no_secrets();
	test_sample(argc > 1 ? argv[1] : NULL);
	return tap_done();
}
