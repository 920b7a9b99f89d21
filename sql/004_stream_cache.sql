-- 004_stream_cache.sql: streamed replies that listeners follow while the
-- model writes, and a cache of replies answered at insert time.

-- What the cache needs to know of a role at insert time: where its rows
-- go (the model is part of the key) and whether it caches by default.
-- Written from the configuration by the workers and "llmqctl migrate -c".
ALTER TABLE llmq.roles
	ADD COLUMN routes jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN cache_ttl_ms bigint
		CONSTRAINT roles_cache_ttl_positive CHECK (cache_ttl_ms > 0);

ALTER TABLE llmq.requests
	-- Set at insert for a cacheable request: the key of its reply in
	-- llmq.cache, and how long that entry lives once written.
	ADD COLUMN cache_key bytea,
	ADD COLUMN cache_ttl_ms bigint,
	-- The token counts are llmqd's estimate: the provider gave none.
	ADD COLUMN tokens_estimated boolean NOT NULL DEFAULT false;

ALTER TABLE llmq.attempts
	ADD COLUMN first_token_at timestamptz,
	ADD COLUMN tokens_estimated boolean NOT NULL DEFAULT false;

-- The text of streamed calls while they run, as the pieces llmqd wrote:
-- each write is one INSERT of a new row and a NOTIFY on the channel
-- "llmq_stream_<request id>", so the request row is never rewritten per
-- token and a long reply is never copied again for every piece.  The
-- rows of a call go when its result is written; the consumer sweeps what
-- a dead worker left.  UNLOGGED: this is progress, not a result; a crash
-- of the server empties it, and a commit that wrote only here does not
-- wait for a WAL flush.
CREATE UNLOGGED TABLE llmq.partials (
	request_id	bigint NOT NULL,
	attempt		integer NOT NULL,
	seq		integer NOT NULL,	-- 1, 2, ... within the attempt
	delta		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (request_id, attempt, seq)
);

-- The text so far of each streamed call in flight.
CREATE VIEW llmq.partial_text AS
	SELECT request_id, attempt, max(seq) AS seq,
	       string_agg(delta, '' ORDER BY seq) AS text,
	       max(created_at) AS updated_at
	  FROM llmq.partials
	 GROUP BY request_id, attempt;

-- Replies by key; see llmq.cache_key().  A hit copies the reply into the
-- new request row at insert.  The consumer deletes expired entries.
CREATE TABLE llmq.cache (
	key		bytea PRIMARY KEY,
	model		text NOT NULL,
	response	text NOT NULL,
	parsed_response	jsonb,
	prompt_tokens	integer,
	completion_tokens integer,
	tokens_estimated boolean NOT NULL DEFAULT false,
	request_id	bigint,		-- the request that produced it
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL
);
CREATE INDEX cache_expires_idx ON llmq.cache (expires_at);

-- The model a request goes to, from the routes of its role (as
-- src/worker.c routes it): the model it names when the role serves or
-- allows it, else the model of its complexity, else the role's default;
-- NULL when none applies.
CREATE FUNCTION llmq.route(routes jsonb, p_model text, p_complexity text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
	    WHEN p_model IS NOT NULL THEN
		CASE WHEN p_model IN (routes ->> 'default',
		    routes ->> 'simple', routes ->> 'medium',
		    routes ->> 'complex')
		    OR coalesce(routes -> 'allow' ? p_model, false)
		THEN p_model END
	    ELSE coalesce(routes ->> p_complexity, routes ->> 'default')
	END
$$;

-- The cache key: SHA-256 of the canonical jsonb text of what decides a
-- reply: the model, the messages, the parameters, the response schema
-- and the tools.  jsonb prints its keys in one order and drops
-- insignificant white space, so equal requests give equal keys however
-- their JSON was written.
CREATE FUNCTION llmq.cache_key(p_model text, p_messages jsonb,
    p_options jsonb)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT sha256(convert_to(jsonb_build_array(p_model, p_messages,
	    p_options -> 'params', p_options -> 'response_schema',
	    p_options -> 'tools')::text, 'UTF8'))
$$;

-- The trigger of 002, and: the options stream, cache and cache_force
-- are checked; a cacheable request gets its key, and when the cache has
-- a live entry for it, it is inserted completed, with cache_hit set.
--
-- Cacheable: option cache (true, false, or a time to live as an
-- interval string or milliseconds), else the role's default; never when
-- params.temperature is above 0, unless cache_force is true (such a
-- reply is a sample, not the answer).  Without a route (the role never
-- registered its models) there is no key.
CREATE OR REPLACE FUNCTION llmq.prepare_request() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	wait_ms integer;
	ttl_ms bigint;
	ro llmq.roles%ROWTYPE;
	v_model text;
	hit llmq.cache%ROWTYPE;
	o jsonb := NEW.options;
	temp jsonb;
BEGIN
	IF NOT llmq.messages_valid(NEW.messages) THEN
		RAISE EXCEPTION 'invalid messages: expected a non-empty array '
		    'of objects with string "role" (system, user, assistant or '
		    'tool) and "content"'
		    USING ERRCODE = 'check_violation',
			  CONSTRAINT = 'requests_messages_valid';
	END IF;
	IF TG_OP <> 'INSERT' OR NEW.status <> 'pending' THEN
		RETURN NEW;
	END IF;
	-- The cache's columns are the trigger's: a caller cannot plant a
	-- key (the finish checks it too) or claim a hit.
	NEW.cache_key := NULL;
	NEW.cache_ttl_ms := NULL;
	NEW.cache_hit := false;
	NEW.tokens_estimated := false;
	SELECT * INTO ro FROM llmq.roles r WHERE r.name = NEW.role;

	IF NEW.queue_deadline IS NULL THEN
		IF o ? 'max_queue_wait' THEN
			wait_ms := llmq.duration_ms(o -> 'max_queue_wait');
			IF wait_ms IS NULL THEN
				RAISE EXCEPTION 'option "max_queue_wait" must be a '
				    'positive number of milliseconds or an interval, '
				    'got %', o -> 'max_queue_wait'
				    USING ERRCODE = 'invalid_parameter_value';
			END IF;
		ELSE
			wait_ms := ro.max_queue_wait_ms;
		END IF;
		IF wait_ms IS NOT NULL THEN
			NEW.queue_deadline := greatest(now(), NEW.run_after) +
			    wait_ms * interval '1 millisecond';
		END IF;
	END IF;

	IF o ? 'stream' AND jsonb_typeof(o -> 'stream') <> 'boolean' THEN
		RAISE EXCEPTION 'option "stream" must be true or false, got %',
		    o -> 'stream'
		    USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF o ? 'cache_force'
	    AND jsonb_typeof(o -> 'cache_force') <> 'boolean' THEN
		RAISE EXCEPTION 'option "cache_force" must be true or false, '
		    'got %', o -> 'cache_force'
		    USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT o ? 'cache' THEN
		ttl_ms := ro.cache_ttl_ms;
	ELSIF jsonb_typeof(o -> 'cache') = 'boolean' THEN
		ttl_ms := CASE WHEN (o ->> 'cache')::boolean
		    THEN coalesce(ro.cache_ttl_ms, 3600000) END;
	ELSE
		BEGIN
			IF jsonb_typeof(o -> 'cache') = 'number' THEN
				ttl_ms := ceil((o ->> 'cache')::numeric);
			ELSIF jsonb_typeof(o -> 'cache') = 'string' THEN
				ttl_ms := ceil(extract(epoch FROM
				    (o ->> 'cache')::interval) * 1000);
			END IF;
		EXCEPTION WHEN others THEN
			ttl_ms := NULL;
		END;
		-- At most 3650 days, as in the configuration.
		IF ttl_ms IS NULL OR ttl_ms <= 0
		    OR ttl_ms > 3650 * 86400 * 1000::bigint THEN
			RAISE EXCEPTION 'option "cache" must be true, false, or '
			    'a time to live (milliseconds or an interval) of at '
			    'most 3650 days, got %', o -> 'cache'
			    USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	IF ttl_ms IS NULL THEN
		RETURN NEW;
	END IF;
	temp := o #> '{params,temperature}';
	IF jsonb_typeof(temp) = 'number' AND (temp #>> '{}')::numeric > 0
	    AND NOT coalesce((o ->> 'cache_force')::boolean, false) THEN
		RETURN NEW;
	END IF;
	v_model := llmq.route(coalesce(ro.routes, '{}'), NEW.model,
	    NEW.complexity);
	IF v_model IS NULL THEN
		RETURN NEW;
	END IF;
	NEW.cache_key := llmq.cache_key(v_model, NEW.messages, o);
	NEW.cache_ttl_ms := ttl_ms;

	SELECT * INTO hit FROM llmq.cache c
	 WHERE c.key = NEW.cache_key AND c.expires_at > now();
	IF FOUND THEN
		NEW.status := 'completed';
		NEW.cache_hit := true;
		NEW.model_used := hit.model;
		NEW.response := hit.response;
		NEW.parsed_response := hit.parsed_response;
		NEW.prompt_tokens := hit.prompt_tokens;
		NEW.completion_tokens := hit.completion_tokens;
		NEW.tokens_estimated := hit.tokens_estimated;
		NEW.claimed_at := clock_timestamp();
		NEW.finished_at := NEW.claimed_at;
		NEW.queue_deadline := NULL;
	END IF;
	RETURN NEW;
END
$$;

-- As 001's, and: a request answered from the cache at insert wakes its
-- caller as any finished request does.
CREATE OR REPLACE FUNCTION llmq.notify_new() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	r text;
	i bigint;
BEGIN
	FOR r IN SELECT DISTINCT n.role FROM new_rows n
		  WHERE n.status = 'pending'
	LOOP
		PERFORM pg_notify('llmq_req_' || r, '');
	END LOOP;
	FOR i IN SELECT n.id FROM new_rows n WHERE n.cache_hit
	LOOP
		PERFORM pg_notify('llmq_done', i::text);
	END LOOP;
	RETURN NULL;
END
$$;
