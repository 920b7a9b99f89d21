-- 007_metrics.sql: an index on finished_at, for the metrics of the
-- result consumer.
--
-- The consumer counts finished requests incrementally: every interval
-- it reads the rows that finished since its last look (a short range of
-- finished_at), instead of grouping the whole table.  The purge of
-- finished rows past their retention reads the same column.  Rows not
-- finished yet have no finished_at and stay out of the index.
CREATE INDEX requests_finished_idx ON llmq.requests (finished_at)
	WHERE finished_at IS NOT NULL;
