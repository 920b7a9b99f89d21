-- 006_admin.sql: cancelling a request, and running a failed or cancelled
-- one again.
--
-- Both functions run with the caller's rights (they are not SECURITY
-- DEFINER): llmq.cancel() needs SELECT and UPDATE on llmq.requests,
-- llmq.retry() the same and DELETE on llmq.partials.

-- Cancel a pending or processing request: it becomes cancelled at once,
-- with error kind "cancelled" and the reason as its message, and
-- llmq_done announces it (the trigger of 001).  Its worker's late
-- result changes nothing, since the finish is fenced on the status;
-- for a request that was processing, a NOTIFY on llmq_cancel names it
-- so that its worker stops the call now rather than at its end.
-- Returns the status the request had: a final one means nothing was
-- done; NULL means there is no such request.
--
-- The row is locked first, so that the status returned is the one the
-- cancel replaced, and a worker's finish waiting on the lock finds the
-- row cancelled and leaves it alone.  finished_at is the clock's, not
-- the transaction's start: a row claimed after that start must not
-- finish before it was claimed.
CREATE FUNCTION llmq.cancel(p_id bigint, p_reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_status text;
BEGIN
	SELECT r.status INTO v_status
	  FROM llmq.requests r WHERE r.id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF v_status NOT IN ('pending', 'processing') THEN
		RETURN v_status;
	END IF;
	UPDATE llmq.requests
	   SET status = 'cancelled', error_kind = 'cancelled',
	       error_message = coalesce(p_reason, 'cancelled'),
	       finished_at = clock_timestamp(),
	       locked_by = NULL, lease_until = NULL
	 WHERE id = p_id;
	IF v_status = 'processing' THEN
		PERFORM pg_notify('llmq_cancel', p_id::text);
	END IF;
	RETURN v_status;
END
$$;

-- Send a failed or cancelled request back to pending, as if it had just
-- been submitted: it gets a fresh budget of attempts, the outcome of the
-- last run (error, response, parsed response, validation errors, model
-- used, fallback, tokens, re-asks, claim, first token and finish times)
-- is cleared, it is due now, and its queue deadline counts from now
-- (as the insert trigger sets it).  The model it asked for, its options
-- and created_at stay; llmq.attempts keeps the calls of the earlier
-- runs.  The attempts go on counting (max_attempts grows by its old
-- budget) rather than start again at 0: the finish of a call is fenced
-- on the attempt number, and a cancelled call still running would
-- otherwise match the first attempt of the new run.  Streamed pieces
-- a cancelled call left go now.  The workers of its role are woken: the trigger of 003 wakes
-- them only for a row handed back from processing.  Returns true when
-- the request was sent back, false when it does not exist or is not
-- failed or cancelled (a completed request is not run again).
CREATE FUNCTION llmq.retry(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v_role text;
BEGIN
	UPDATE llmq.requests r
	   SET status = 'pending', run_after = now(),
	       max_attempts = r.attempts + r.max_attempts,
	       error_kind = NULL, error_message = NULL, http_status = NULL,
	       response = NULL, parsed_response = NULL,
	       validation_errors = NULL, model_used = NULL,
	       fallback_used = false, prompt_tokens = NULL,
	       completion_tokens = NULL, tokens_estimated = false,
	       reasks = 0, claimed_at = NULL, first_token_at = NULL,
	       finished_at = NULL, locked_by = NULL, lease_until = NULL,
	       queue_deadline = now() + coalesce(
		   llmq.duration_ms(r.options -> 'max_queue_wait'),
		   (SELECT ro.max_queue_wait_ms FROM llmq.roles ro
		     WHERE ro.name = r.role))
		   * interval '1 millisecond'
	 WHERE r.id = p_id AND r.status IN ('failed', 'cancelled')
	RETURNING r.role INTO v_role;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	DELETE FROM llmq.partials p WHERE p.request_id = p_id;
	PERFORM pg_notify('llmq_req_' || v_role, '');
	RETURN true;
END
$$;
