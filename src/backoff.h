/*
 * backoff.h: how long a request waits before its next attempt.
 */
#ifndef LLMQ_BACKOFF_H
#define LLMQ_BACKOFF_H

#include <stdint.h>

/*
 * The delay before the attempt after attempt (1 for the first) failed:
 * base doubled for each attempt made, at most cap, with "equal jitter"
 * (half of it fixed, half drawn from rnd) so that requests that failed
 * together do not come back together; and at least what the server
 * asked for (retry_after_ms, -1 for nothing), itself at most cap.
 */
int64_t backoff_delay(int attempt, int64_t base_ms, int64_t cap_ms,
    int64_t retry_after_ms, uint32_t rnd);

#endif
