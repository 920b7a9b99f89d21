/*
 * cfg.h: the configuration of llmqd, as parsed from /etc/llmq.yaml.
 *
 * A struct cfg is built whole by cfg_load() and never changed afterwards;
 * a reload builds a new one and swaps it in.  Models refer to providers
 * and roles to models by index into the arrays below, so the object is
 * self-contained and can be freed with one call.  Durations are held in
 * milliseconds.
 */
#ifndef LLMQ_CFG_H
#define LLMQ_CFG_H

#include <stddef.h>
#include <stdint.h>

enum prov_kind { PROV_OLLAMA, PROV_OPENAI };

enum complexity { CX_SIMPLE, CX_MEDIUM, CX_COMPLEX, CX_COUNT };

/* Models one role's rows may go to, fallbacks included. */
#define CFG_ROLE_MODELS_MAX 8

/* The error kinds a call can end with, for models.M.fallback_on. */
enum err_kind {
	ERR_TIMEOUT,
	ERR_PROVIDER_DOWN,
	ERR_RATE_LIMITED,
	ERR_HTTP_ERROR,
	ERR_BAD_REQUEST,
	ERR_PARSE_ERROR,
	ERR_VALIDATION_ERROR,
	ERR_COUNT
};

/* How a request's response_schema reaches a provider. */
enum resp_format {
	RESP_SCHEMA, /* natively: Ollama format, OpenAI json_schema */
	RESP_JSON,   /* JSON mode only: format "json", json_object */
	RESP_NONE    /* not at all (the reply is still checked) */
};

struct cfg_provider {
	char *name;
	enum prov_kind kind;
	char *url;                  /* base URL, no trailing slash */
	int64_t timeout_ms;         /* whole call; default 60s */
	int64_t connect_timeout_ms; /* default 5s */
	int concurrency;            /* 0: no limit of its own */
	size_t max_response;        /* bytes; default 8 MiB */
	int cool_failures;          /* failures in a row that cool it down */
	int64_t cool_window_ms;     /* ... within this long; default 10s */
	int64_t cool_ms;            /* for this long; default 10s */
	enum resp_format response_format; /* how a response_schema goes */
	int strict_schema;                /* OpenAI's "strict"; default 0 */
	char *api_key; /* from api_key_file / api_key_env; secret */
};

struct cfg_model {
	char *name;              /* as sent to the provider */
	int provider;            /* index into cfg.providers */
	int fallback;            /* index into cfg.models, or -1 */
	unsigned fallback_on;    /* error kinds (1 << ERR_...) that fall back */
	int concurrency;         /* 0: no limit of its own */
	int cluster_concurrency; /* all hosts together; 0: none */
};

struct cfg_role {
	char *name;      /* [a-z][a-z0-9_]*, at most 40 bytes */
	int processes;   /* default 1 */
	int concurrency; /* default 1 */
	int model;       /* index into cfg.models, or -1 when by complexity */
	int by_complexity[CX_COUNT]; /* indexes, -1 when unset */
	int *allow_models;           /* a request may name these too */
	size_t nallow;
	int64_t timeout_ms;        /* 0: the provider's timeout */
	int max_attempts;          /* default 3 */
	int64_t max_queue_wait_ms; /* 0: wait for ever */
	int64_t backoff_base_ms;   /* first retry delay; default 1s */
	int64_t backoff_cap_ms;    /* longest, Retry-After too; 60s */
	int stream;                /* stream replies by default */
	int max_reasks;            /* re-asks on a bad reply; default 1 */
	int64_t cache_ttl_ms;      /* cache replies by default; 0: no */
};

struct cfg {
	char *path;
	char *database; /* libpq conninfo; required */
	char *user;     /* NULL: do not change user */
	char *pidfile;  /* default LOCALSTATEDIR/run/llmq/llmqd.pid */
	char *log;      /* "syslog", "stderr" or a path; default syslog */
	int log_level;  /* syslog level; default LOG_INFO */
	int64_t poll_interval_ms;    /* default 100 */
	int batch_size;              /* default 50 */
	int64_t lease_ms;            /* default 5m */
	int64_t shutdown_timeout_ms; /* default 30s */
	int64_t retention_ms;        /* default 90d */
	int crash_limit;             /* deaths of one role ...; default 5 */
	int64_t crash_window_ms;     /* ... within this window; default 60s */
	int limit_global;            /* limits.global; 0: none */

	struct cfg_provider *providers;
	size_t nproviders;
	struct cfg_model *models;
	size_t nmodels;
	struct cfg_role *roles;
	size_t nroles;

	/* consumer: */
	char *metrics_file;           /* NULL: none */
	int64_t consumer_interval_ms; /* default 1s */
};

/*
 * Parse and validate the file at path.  On error returns NULL and writes
 * "FILE:LINE:COL: KEY.PATH: message" into err.
 */
struct cfg *cfg_load(const char *path, char *err, size_t errlen);
/*
 * With flags: CFG_NO_SECRETS leaves API keys unread (api_key stays NULL),
 * for tools such as llmqctl that need the database and roles only.
 */
#define CFG_NO_SECRETS 0x01
struct cfg *cfg_load_flags(
    const char *path, int flags, char *err, size_t errlen);
/* Same, from a string (for unit tests); name is used in messages. */
struct cfg *cfg_load_string(
    const char *name, const char *text, char *err, size_t errlen);
void cfg_free(struct cfg *);

/*
 * "100ms", "60s", "5m", "2h", "90d" (a bare number is seconds) into
 * milliseconds.  Returns 0, or -1 when malformed or out of range.
 */
int cfg_parse_duration(const char *s, int64_t *ms);

const struct cfg_role *cfg_role_find(const struct cfg *, const char *name);
/*
 * The model of a row of role r that names none and has no complexity the
 * role routes: its model, else medium's, else the first one set; -1 when
 * none.
 */
int cfg_role_default_model(const struct cfg_role *);

/*
 * The routes of role r as JSON text, for the roles table (the cache
 * keys requests by the model they go to, at insert time): {"default":
 * M, "simple": M, "medium": M, "complex": M, "allow": [M, ...]}, the
 * complexities present only when set.  The caller frees it.
 */
char *cfg_role_routes(const struct cfg *, const struct cfg_role *);
/*
 * The models role ro's rows may go to: its own, those it allows, and
 * their fallbacks; at most max of them, into out.  Returns how many.
 */
int cfg_role_models(
    const struct cfg *, const struct cfg_role *ro, int *out, int max);
int cfg_model_find(const struct cfg *, const char *name); /* -1: none */
const char *cfg_complexity_name(enum complexity);
/* The enum err_kind of an error kind's name, or -1. */
int cfg_err_kind(const char *);
int cfg_complexity_parse(const char *); /* -1: unknown */

#endif
