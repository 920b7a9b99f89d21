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

CREATE INDEX attempts_request_idx ON llmq.attempts (request_id);
CREATE INDEX attempts_started_idx ON llmq.attempts (started_at);
