/*
 * test_backoff.c: unit tests for backoff.c, the delay between attempts:
 * doubling from the base, the cap, the jitter's bounds, and Retry-After
 * as a floor that the cap still bounds.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>

#include "backoff.h"
#include "tap.h"

/* Over many draws, the smallest and largest delay after attempt. */
static void
span(int attempt, int64_t base, int64_t cap, int64_t ra, int64_t *lo,
    int64_t *hi)
{
	uint32_t r;
	int64_t d;

	*lo = INT64_MAX;
	*hi = -1;
	for (r = 0; r < 100000; r += 7) {
		d = backoff_delay(attempt, base, cap, ra, r * 2654435761U);
		if (d < *lo)
			*lo = d;
		if (d > *hi)
			*hi = d;
	}
}

int
main(void)
{
	int64_t lo, hi;

	span(1, 1000, 60000, -1, &lo, &hi);
	CHECK(lo == 500 && hi == 1000,
	    "attempt 1: half the base to the base (%lld..%lld)", (long long)lo,
	    (long long)hi);
	span(2, 1000, 60000, -1, &lo, &hi);
	CHECK(lo == 1000 && hi == 2000, "attempt 2: doubled (%lld..%lld)",
	    (long long)lo, (long long)hi);
	span(4, 1000, 60000, -1, &lo, &hi);
	CHECK(lo == 4000 && hi == 8000, "attempt 4: 8 s step (%lld..%lld)",
	    (long long)lo, (long long)hi);
	span(10, 1000, 60000, -1, &lo, &hi);
	CHECK(lo == 30000 && hi <= 60000 && hi > 59000,
	    "attempt 10: capped (%lld..%lld)", (long long)lo, (long long)hi);
	span(100, 1000, 60000, -1, &lo, &hi);
	CHECK(lo == 30000 && hi <= 60000 && hi > 59000,
	    "attempt 100: no overflow, capped (%lld..%lld)", (long long)lo,
	    (long long)hi);
	span(1, 1000, 60000, 5000, &lo, &hi);
	CHECK(lo == 5000 && hi == 5000,
	    "Retry-After longer than the backoff is waited (%lld..%lld)",
	    (long long)lo, (long long)hi);
	span(3, 1000, 60000, 1000, &lo, &hi);
	CHECK(lo == 2000 && hi == 4000,
	    "Retry-After shorter than the backoff changes nothing");
	span(1, 1000, 60000, 3600000, &lo, &hi);
	CHECK(lo == 60000 && hi == 60000,
	    "an hour of Retry-After is cut to the cap (%lld)", (long long)hi);
	span(1, 1000, 60000, 0, &lo, &hi);
	CHECK(lo == 500 && hi == 1000, "Retry-After 0 is no floor");
	span(1, 1, 1, -1, &lo, &hi);
	CHECK(lo >= 0 && hi <= 1, "a 1 ms base and cap stay within 0..1");
	return tap_done();
}
