/*
 * ctl_table.c: the text tables of "llmqctl status" and "llmqctl stats",
 * each column as wide as its widest cell, numbers aligned right.
 *
 * A table owns its cells: the caller fills the rows it gets from
 * ctl_table_row() with allocated strings, and ctl_table_flush() prints
 * them and frees them all, so that a table is printed once and is empty
 * again after.  A row ends at its last non-NULL cell: nothing, not even
 * padding, is printed after it, so that no line ends in blanks.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

char **
ctl_table_row(struct ctl_table *t)
{
	char **row;

	t->cell = xreallocarray(
	    t->cell, (t->nrows + 1) * (size_t)t->ncols, sizeof(*t->cell));
	row = &t->cell[t->nrows++ * (size_t)t->ncols];
	memset(row, 0, (size_t)t->ncols * sizeof(*row));
	return row;
}

/* One line: the head or a row, up to its last non-NULL cell. */
static void
table_line(const struct ctl_table *t, const int *width, const char *const *cell)
{
	const char *v;
	int c, last;

	for (last = t->ncols - 1; last > 0 && cell[last] == NULL; last--)
		;
	for (c = 0; c <= last; c++) {
		v = cell[c] != NULL ? cell[c] : "";
		if (c == last && !t->cols[c].right)
			printf("%s\n", v);
		else
			printf("%*s%s", t->cols[c].right ? width[c] : -width[c],
			    v, c == last ? "\n" : "  ");
	}
}

void
ctl_table_flush(struct ctl_table *t)
{
	const char *head[CTL_TABLE_MAXCOLS];
	int width[CTL_TABLE_MAXCOLS], c, len;
	size_t i;

	for (c = 0; c < t->ncols; c++) {
		head[c] = t->cols[c].head;
		width[c] = (int)strlen(head[c]);
	}
	for (i = 0; i < t->nrows * (size_t)t->ncols; i++)
		if (t->cell[i] != NULL &&
		    (len = (int)strlen(t->cell[i])) > width[i % t->ncols])
			width[i % t->ncols] = len;
	table_line(t, width, head);
	for (i = 0; i < t->nrows; i++)
		table_line(t, width,
		    (const char *const *)&t->cell[i * (size_t)t->ncols]);
	for (i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cell[i]);
	free(t->cell);
	t->cell = NULL;
	t->nrows = 0;
}
