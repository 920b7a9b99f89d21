-- 002_limits.sql: queue deadlines, and the claim as one function that can
-- hold a model to a cap shared by every llmqd on this database.

-- A role's default max_queue_wait, written from the configuration by the
-- workers and by "llmqctl migrate -c".
ALTER TABLE llmq.roles ADD COLUMN max_queue_wait_ms integer
	CONSTRAINT roles_max_queue_wait_positive CHECK (max_queue_wait_ms > 0);

-- A pending request not claimed by this time fails with error kind
-- "overload".  Set at insert from the max_queue_wait option or the role's
-- default; cleared when the request is claimed (it made it in time).
ALTER TABLE llmq.requests ADD COLUMN queue_deadline timestamptz;

CREATE INDEX requests_deadline_idx ON llmq.requests (queue_deadline)
	WHERE status = 'pending' AND queue_deadline IS NOT NULL;

-- A duration option, given as a number of milliseconds or an interval
-- string ('30s', '2 minutes'), in milliseconds; NULL when it is neither
-- or not positive.
CREATE FUNCTION llmq.duration_ms(v jsonb) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	ms numeric;
BEGIN
	IF jsonb_typeof(v) = 'number' THEN
		ms := (v #>> '{}')::numeric;
	ELSIF jsonb_typeof(v) = 'string' THEN
		ms := extract(epoch FROM (v #>> '{}')::interval) * 1000;
	ELSE
		RETURN NULL;
	END IF;
	IF ms <= 0 OR ms > 2147483647 THEN
		RETURN NULL;
	END IF;
	RETURN ceil(ms)::integer;
EXCEPTION WHEN others THEN
	RETURN NULL;
END
$$;

-- One BEFORE trigger instead of two: checks the messages (as 001's
-- trigger did) and, on insert, sets the queue deadline.  The deadline
-- counts from run_after when that is later than now.
CREATE FUNCTION llmq.prepare_request() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	wait_ms integer;
BEGIN
	IF NOT llmq.messages_valid(NEW.messages) THEN
		RAISE EXCEPTION 'invalid messages: expected a non-empty array '
		    'of objects with string "role" (system, user, assistant or '
		    'tool) and "content"'
		    USING ERRCODE = 'check_violation',
			  CONSTRAINT = 'requests_messages_valid';
	END IF;
	IF TG_OP = 'INSERT' AND NEW.queue_deadline IS NULL
	    AND NEW.status = 'pending' THEN
		IF NEW.options ? 'max_queue_wait' THEN
			wait_ms := llmq.duration_ms(NEW.options -> 'max_queue_wait');
			IF wait_ms IS NULL THEN
				RAISE EXCEPTION 'option "max_queue_wait" must be a '
				    'positive number of milliseconds or an interval, '
				    'got %', NEW.options -> 'max_queue_wait'
				    USING ERRCODE = 'invalid_parameter_value';
			END IF;
		ELSE
			SELECT r.max_queue_wait_ms INTO wait_ms
			  FROM llmq.roles r WHERE r.name = NEW.role;
		END IF;
		IF wait_ms IS NOT NULL THEN
			NEW.queue_deadline := greatest(now(), NEW.run_after) +
			    wait_ms * interval '1 millisecond';
		END IF;
	END IF;
	RETURN NEW;
END
$$;

DROP TRIGGER requests_messages_valid ON llmq.requests;
DROP FUNCTION llmq.check_messages();
CREATE TRIGGER requests_prepare
	BEFORE INSERT OR UPDATE OF messages ON llmq.requests
	FOR EACH ROW EXECUTE FUNCTION llmq.prepare_request();

-- llmqd runs the same UPDATE as a prepared statement ("claim" in
-- src/db.c) for a model without a cap; keep the two alike.
--
-- Claim at most p_n due rows of p_role for one model of it, for holder
-- p_holder.  Which rows belong to that model: those naming one of
-- p_models, or naming none and having a complexity in p_cx; with
-- p_negate, every row that does not.  The model is written to model_used
-- at once, so that the rows in flight on a model can be counted.
--
-- With p_cap, at most p_cap rows of p_model may be processing at once
-- over the whole database: the count and the claim run under an advisory
-- transaction lock on the model, and each statement of this function
-- takes a new snapshot, so the count sees every claim committed before
-- the lock was granted.
CREATE FUNCTION llmq.claim(p_role text, p_holder text, p_n integer,
    p_lease_ms bigint, p_max_attempts integer, p_models text[],
    p_cx text[], p_negate boolean, p_model text, p_cap integer)
RETURNS TABLE (id bigint, attempts integer, messages jsonb, options jsonb,
    model text, complexity text, timeout_ms integer, max_attempts integer,
    fallback_used boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	n integer := p_n;
BEGIN
	IF p_cap IS NOT NULL THEN
		-- Other hosts hold this lock only for their claim: wait for
		-- it longer than llmqd's session lock_timeout (200ms) would.
		PERFORM set_config('lock_timeout', '5s', true);
		-- 1819045233 is "llmq" read as an integer: our class of locks.
		PERFORM pg_advisory_xact_lock(1819045233, hashtext(p_model));
		SELECT least(p_n, p_cap - count(*)) INTO n
		  FROM llmq.requests q
		 WHERE q.status = 'processing' AND q.model_used = p_model;
	END IF;
	IF n <= 0 THEN
		RETURN;
	END IF;
	RETURN QUERY
	UPDATE llmq.requests r
	   SET status = 'processing', attempts = r.attempts + 1,
	       locked_by = p_holder, claimed_at = clock_timestamp(),
	       lease_until = clock_timestamp() +
		   p_lease_ms * interval '1 millisecond',
	       max_attempts = coalesce(r.max_attempts, p_max_attempts),
	       model_used = p_model, queue_deadline = NULL
	  FROM (SELECT q.id FROM llmq.requests q
		 WHERE q.role = p_role AND q.status = 'pending'
		   AND q.run_after <= now()
		   AND (q.queue_deadline IS NULL OR q.queue_deadline > now())
		   AND coalesce(q.model = ANY (p_models)
			 OR (q.model IS NULL AND q.complexity = ANY (p_cx)),
			 false) <> p_negate
		 ORDER BY q.priority DESC, q.run_after, q.id
		 LIMIT n FOR UPDATE SKIP LOCKED) c
	 WHERE r.id = c.id
	RETURNING r.id, r.attempts, r.messages, r.options, r.model,
		  r.complexity, r.timeout_ms, r.max_attempts, r.fallback_used;
END
$$;
