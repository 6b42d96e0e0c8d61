/* SPDX-License-Identifier: BSD-2-Clause */
/* Memory kept by the keeper across a crash (region.h). */
#include "config.h"
#include "region.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* What every region opens with. */
struct header {
	uint32_t magic, version;
};

static void *map_shared(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* KEPT_FD's mapping when it is SIZE bytes of this layout, else NULL. */
static void *map_kept(int kept_fd, size_t size, uint32_t magic, uint32_t version)
{
	struct header *h;

	if (lseek(kept_fd, 0, SEEK_END) != (off_t)size || (h = map_shared(kept_fd, size)) == NULL)
		return NULL;
	if (h->magic == magic && h->version == version)
		return h;
	munmap(h, size);
	return NULL;
}

int lz_region_open(struct lz_region *r, int kept_fd, const char *name, size_t size, uint32_t magic,
		   uint32_t version)
{
	*r = (struct lz_region){ .fd = kept_fd, .size = size };
	if (kept_fd >= 0 && (r->base = map_kept(kept_fd, size, magic, version)) != NULL) {
		r->kept = true;
		return 0;
	}
	if (kept_fd >= 0)
		close(kept_fd);
	r->fd = memfd_create(name, MFD_CLOEXEC);
	if (r->fd < 0)
		return -1;
	if (ftruncate(r->fd, (off_t)size) != 0 || (r->base = map_shared(r->fd, size)) == NULL) {
		int e = errno;
		close(r->fd);
		r->fd = -1;
		errno = e;
		return -1;
	}
	struct header *h = r->base;
	h->magic = magic;
	h->version = version;
	return 0;
}

void lz_region_close(struct lz_region *r)
{
	if (r->base != NULL)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	*r = (struct lz_region){ .fd = -1 };
}
