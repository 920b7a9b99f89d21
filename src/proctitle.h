/*
 * proctitle.h: set the title ps(1) shows for this process.
 */
#ifndef LLMQ_PROCTITLE_H
#define LLMQ_PROCTITLE_H

/*
 * Call once from main() before anything reads environ or argv; use the
 * returned copy of argv from then on (it lives as long as the process).
 */
char **proctitle_init(int argc, char **argv);
void proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
