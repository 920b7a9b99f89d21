-- 005_structured.sql: structured output.  A request's response_schema
-- and tools are checked at insert against the subset of JSON Schema that
-- llmqd validates; re-asks are counted.

-- How many times the model was re-asked after a reply that did not
-- parse or validate, in the attempt that finished the request.
ALTER TABLE llmq.requests ADD COLUMN reasks integer NOT NULL DEFAULT 0;

-- The round of a call within its attempt: 0 the first, 1 the first
-- re-ask, ...
ALTER TABLE llmq.attempts ADD COLUMN round integer NOT NULL DEFAULT 0;

-- The first problem of a JSON Schema for llmqd's validator (js_check()
-- in src/jscheck.c, which checks the same again and also compiles the
-- patterns), as "what at /schema/path", or NULL when there is none.
-- Keep the keyword lists in step with js_check().
--
-- A member that is no keyword is refused unless a $ref points at or
-- into it (a container of schemas, as "definitions" is): refs holds the
-- $refs of the whole schema, gathered by the outermost call.
CREATE FUNCTION llmq.schema_problem(s jsonb, path text DEFAULT '',
    refs text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	k text;
	v jsonb;
	p text;
	i integer;
	e text;
	d record;
BEGIN
	IF refs IS NULL THEN
		refs := ARRAY(SELECT r #>> '{}'
				FROM jsonb_path_query(s, 'lax $.**."$ref"') r
			       WHERE jsonb_typeof(r) = 'string');
	END IF;
	IF jsonb_typeof(s) = 'boolean' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(s) IS DISTINCT FROM 'object' THEN
		RETURN 'a schema must be an object or a boolean at '
		    || coalesce(nullif(path, ''), '/');
	END IF;
	FOR k, v IN SELECT * FROM jsonb_each(s) LOOP
		p := path || '/' || replace(replace(k, '~', '~0'), '/', '~1');
		IF k IN ('additionalProperties', 'additionalItems', 'contains',
		    'propertyNames', 'not', 'if', 'then', 'else') THEN
			e := llmq.schema_problem(v, p, refs);
		ELSIF k = 'items' AND jsonb_typeof(v) = 'array' THEN
			FOR i IN 0 .. jsonb_array_length(v) - 1 LOOP
				e := llmq.schema_problem(v -> i, p || '/' || i, refs);
				EXIT WHEN e IS NOT NULL;
			END LOOP;
		ELSIF k = 'items' THEN
			e := llmq.schema_problem(v, p, refs);
		ELSIF k IN ('allOf', 'anyOf', 'oneOf') THEN
			IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0
			THEN
				RETURN k || ' must be a non-empty array at ' || p;
			END IF;
			FOR i IN 0 .. jsonb_array_length(v) - 1 LOOP
				e := llmq.schema_problem(v -> i, p || '/' || i, refs);
				EXIT WHEN e IS NOT NULL;
			END LOOP;
		ELSIF k IN ('properties', 'patternProperties', 'definitions',
		    '$defs', 'dependencies') THEN
			IF jsonb_typeof(v) <> 'object' THEN
				RETURN k || ' must be an object at ' || p;
			END IF;
			FOR d IN SELECT * FROM jsonb_each(v) LOOP
				-- dependencies: a schema, or property names.
				CONTINUE WHEN k = 'dependencies'
				    AND jsonb_typeof(d.value) = 'array';
				e := llmq.schema_problem(d.value, p || '/' ||
				    replace(replace(d.key, '~', '~0'), '/', '~1'),
				    refs);
				EXIT WHEN e IS NOT NULL;
			END LOOP;
		ELSIF k = '$ref' THEN
			IF jsonb_typeof(v) <> 'string' OR left(v #>> '{}', 1) <> '#'
			THEN
				RETURN 'only local $ref ("#...") is supported, at '
				    || p;
			END IF;
		ELSIF k = 'type' THEN
			IF EXISTS (SELECT 1 FROM jsonb_array_elements_text(
				CASE jsonb_typeof(v) WHEN 'array' THEN v
				     ELSE jsonb_build_array(v) END) t
			    WHERE t NOT IN ('null', 'boolean', 'object', 'array',
				'number', 'string', 'integer')) THEN
				RETURN 'unknown type at ' || p;
			END IF;
		ELSIF k = 'format' THEN
			IF v #>> '{}' NOT IN ('date-time', 'date', 'time', 'email',
			    'uri', 'uuid', 'ipv4', 'ipv6') THEN
				RETURN 'unsupported format ' || v::text || ' at ' || p;
			END IF;
		ELSIF k NOT IN ('required', 'enum', 'const', 'minLength',
		    'maxLength', 'pattern', 'minimum', 'maximum',
		    'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
		    'minItems', 'maxItems', 'uniqueItems', 'minProperties',
		    'maxProperties', '$schema', '$id', 'title',
		    'description', 'default', 'examples', '$comment',
		    'readOnly', 'writeOnly', 'contentMediaType',
		    'contentEncoding') THEN
			IF NOT EXISTS (SELECT 1 FROM unnest(refs) r
				WHERE r = '#' || p
				   OR left(r, length(p) + 2) = '#' || p || '/') THEN
				RETURN 'unsupported keyword "' || k || '" at ' || p;
			END IF;
		END IF;
		IF e IS NOT NULL THEN
			RETURN e;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

-- The checks of 004's trigger, and: response_schema must be a schema
-- of the supported subset; tools an array of function definitions whose
-- parameters are such schemas.
CREATE FUNCTION llmq.check_structured() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	o jsonb := NEW.options;
	e text;
	t jsonb;
	i integer := 0;
BEGIN
	IF TG_OP <> 'INSERT' OR NEW.status <> 'pending' THEN
		RETURN NEW;
	END IF;
	IF o -> 'response_schema' = 'false' THEN
		RAISE EXCEPTION 'option "response_schema": false accepts no '
		    'reply at all'
		    USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF o ? 'response_schema' THEN
		e := llmq.schema_problem(o -> 'response_schema');
		IF e IS NOT NULL THEN
			RAISE EXCEPTION 'option "response_schema": %', e
			    USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	IF o ? 'tools' THEN
		IF jsonb_typeof(o -> 'tools') <> 'array' THEN
			RAISE EXCEPTION 'option "tools" must be an array of '
			    'function definitions'
			    USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOR t IN SELECT * FROM jsonb_array_elements(o -> 'tools') LOOP
			IF jsonb_typeof(t) <> 'object'
			    OR t ->> 'type' IS DISTINCT FROM 'function'
			    OR jsonb_typeof(t #> '{function,name}')
				IS DISTINCT FROM 'string' THEN
				RAISE EXCEPTION 'option "tools": element % must be '
				    '{"type": "function", "function": {"name": ...}}',
				    i
				    USING ERRCODE = 'invalid_parameter_value';
			END IF;
			IF t #> '{function,parameters}' IS NOT NULL THEN
				e := llmq.schema_problem(t #> '{function,parameters}');
				IF e IS NOT NULL THEN
					RAISE EXCEPTION 'option "tools": element %, '
					    'parameters: %', i, e
					    USING ERRCODE = 'invalid_parameter_value';
				END IF;
			END IF;
			i := i + 1;
		END LOOP;
	END IF;
	IF o ? 'max_reasks' AND (jsonb_typeof(o -> 'max_reasks') <> 'number'
	    OR (o ->> 'max_reasks')::numeric NOT BETWEEN 0 AND 10
	    OR (o ->> 'max_reasks')::numeric <>
		trunc((o ->> 'max_reasks')::numeric)) THEN
		RAISE EXCEPTION 'option "max_reasks" must be an integer from 0 '
		    'to 10'
		    USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN NEW;
END
$$;

-- Before requests_prepare (triggers fire in name order), so that a bad
-- schema is refused before the cache is looked at.
CREATE TRIGGER requests_check_structured
	BEFORE INSERT ON llmq.requests
	FOR EACH ROW EXECUTE FUNCTION llmq.check_structured();

-- The pieces of a streamed reply belong to a round too: a re-ask
-- streams a new text in the same attempt.
ALTER TABLE llmq.partials ADD COLUMN round integer NOT NULL DEFAULT 0;
ALTER TABLE llmq.partials DROP CONSTRAINT partials_pkey;
ALTER TABLE llmq.partials ADD PRIMARY KEY (request_id, attempt, round, seq);
DROP VIEW llmq.partial_text;
CREATE VIEW llmq.partial_text AS
	SELECT request_id, attempt, round, max(seq) AS seq,
	       string_agg(delta, '' ORDER BY seq) AS text,
	       max(created_at) AS updated_at
	  FROM llmq.partials
	 GROUP BY request_id, attempt, round;
