/*
 * migrations.h: the SQL migrations compiled into llmqctl.
 *
 * The array is generated from sql/NNN_name.sql by build-aux/sql2c.sh, in
 * version order, and ends with an entry whose version is 0.
 */
#ifndef LLMQ_MIGRATIONS_H
#define LLMQ_MIGRATIONS_H

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];

#endif
