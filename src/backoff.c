/*
 * backoff.c: the delay between attempts of a request.
 *
 * Exponential, capped, with equal jitter: of a delay d, d/2 is waited in
 * any case and the rest is drawn at random, so that a burst of requests
 * that failed at once (a provider that fell over) spreads out when it
 * comes back, while no request retries sooner than half its step.  A
 * server's Retry-After is a floor, not a replacement: it knows when it
 * will have room, but a large value is cut to the cap so that one reply
 * cannot park a request for hours.
 */
#include "config.h"

#include "backoff.h"

int64_t
backoff_delay(int attempt, int64_t base_ms, int64_t cap_ms,
    int64_t retry_after_ms, uint32_t rnd)
{
	int64_t d = base_ms;
	int i;

	for (i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	d = d / 2 + (d / 2 > 0 ? (int64_t)(rnd % (uint64_t)(d / 2 + 1)) : 0);
	if (retry_after_ms >= 0) {
		if (retry_after_ms > cap_ms)
			retry_after_ms = cap_ms;
		if (d < retry_after_ms)
			d = retry_after_ms;
	}
	return d;
}
