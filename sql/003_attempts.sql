-- 003_attempts.sql: one row per call to a provider, and the columns a
-- retry needs.

-- The history of every call made for a request: the request row keeps
-- only the outcome of the last one.  Deleted with its request.
CREATE TABLE llmq.attempts (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	request_id	bigint NOT NULL
			REFERENCES llmq.requests (id) ON DELETE CASCADE,
	attempt		integer NOT NULL,	-- the request's attempt
	model		text NOT NULL,
	provider	text NOT NULL,
	started_at	timestamptz NOT NULL,
	first_byte_at	timestamptz,
	finished_at	timestamptz NOT NULL,
	http_status	integer,
	error_kind	text,			-- null: the call succeeded
	error_message	text,
	retry		boolean NOT NULL DEFAULT false,	-- it was retried
	prompt_tokens	integer,
	completion_tokens integer,

	CONSTRAINT attempts_error_kind_known
		CHECK (error_kind IN ('timeout', 'provider_down',
		    'rate_limited', 'http_error', 'bad_request', 'parse_error',
		    'validation_error', 'overload', 'cancelled', 'internal'))
);

-- One row per call even when its result is written twice (a finish whose
-- reply was lost with the connection is sent again after reconnecting).
CREATE UNIQUE INDEX attempts_call_idx
	ON llmq.attempts (request_id, attempt, started_at);
CREATE INDEX attempts_started_idx ON llmq.attempts (started_at);

-- A retry goes back to pending due later: wake the workers only when the
-- row is due now (a fallback), not for every retry, which the poll finds
-- when it is due.
DROP TRIGGER requests_notify_requeued ON llmq.requests;
CREATE TRIGGER requests_notify_requeued
	AFTER UPDATE OF status ON llmq.requests
	FOR EACH ROW
	WHEN (NEW.status = 'pending' AND OLD.status = 'processing'
	      AND NEW.run_after <= clock_timestamp())
	EXECUTE FUNCTION llmq.notify_requeued();
