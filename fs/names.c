#include "config.h"
#include "names.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int lz_name_check(const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	if (len == 0)
		return ENOENT;
	if (len > NAME_MAX)
		return ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return ENOENT;
	if (memchr(name, '/', len) != NULL)
		return ENOENT;
	return 0;
}
