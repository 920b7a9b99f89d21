/*
 * bench.h: what the benchmark programs share (each includes it once):
 * sorting samples and reading percentiles off them.
 */
#ifndef LLMQ_BENCH_H
#define LLMQ_BENCH_H

#include <stdint.h>

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least q% at or below it. */
static int64_t
rank(const int64_t *v, int n, int q)
{
	int i = (int)(((int64_t)n * q + 99) / 100) - 1;

	return v[i < 0 ? 0 : i];
}

#endif
