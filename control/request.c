/* SPDX-License-Identifier: BSD-2-Clause */
/* The control socket's request line (request.h). */
#include "config.h"
#include "request.h"

#include <string.h>

void lz_request_parse(char *line, struct lz_request *r)
{
	char *save = NULL;

	line[strcspn(line, "\r\n")] = '\0';
	r->json = false;
	r->cmd = strtok_r(line, " ", &save);
	if (r->cmd != NULL && strcmp(r->cmd, "json") == 0) {
		r->json = true;
		r->cmd = strtok_r(NULL, " ", &save);
	}
	r->arg = strtok_r(NULL, "", &save);
}

const char *lz_request_entry(const char *arg)
{
	if (arg == NULL || arg[0] == '\0' || strstr(arg, "..") != NULL)
		return NULL;
	while (*arg == '/')
		arg++;
	return arg[0] != '\0' ? arg : NULL; /* "/" names no entry */
}
