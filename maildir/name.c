/*
 * maildir/name.c — Maildir file names: unique base names, the ":2," info
 * with its flag letters, and the ",S=" size Dovecot records in names.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/error.h"

static atomic_uint name_counter;

/* The host name with '/' and ':' escaped as the Maildir convention says
 * (as "\057" and "\072"), so it can never break a file name apart. */
static void escaped_host(char *out, size_t size)
{
	char host[256];
	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	size_t k = 0;
	for (const char *p = host; *p && k + 5 < size; p++) {
		if (*p == '/' || *p == ':' || *p == '\\' || (unsigned char)*p < 0x20)
			k += (size_t)snprintf(out + k, size - k, "\\%03o", (unsigned char)*p);
		else
			out[k++] = *p;
	}
	out[k] = '\0';
}

int md_unique_name(char *buf, size_t size, size_t msg_size)
{
	static char host[256];
	if (!host[0])
		escaped_host(host, sizeof host);
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned q = atomic_fetch_add(&name_counter, 1);
	int n = snprintf(buf, size, "%lld.M%06ldP%ldQ%u.%s,S=%zu", (long long)tv.tv_sec,
			 (long)tv.tv_usec, (long)getpid(), q, host, msg_size);
	if (n < 0 || (size_t)n >= size)
		return err_set(MCRDT_ERANGE, "file name does not fit in %zu bytes", size);
	return 0;
}

static int cmp_char(const void *a, const void *b)
{
	return *(const char *)a - *(const char *)b;
}

int md_flags_normalize(const char *letters, char *out)
{
	char tmp[MD_FLAGS_MAX + 1];
	size_t n = 0;
	for (const char *p = letters; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return err_set(MCRDT_EINVAL, "'%c' is not a Maildir flag letter", c);
		if (!memchr(tmp, c, n)) {
			if (n == MD_FLAGS_MAX)
				return err_set(MCRDT_EINVAL, "too many flag letters");
			tmp[n++] = c;
		}
	}
	qsort(tmp, n, 1, cmp_char);
	memcpy(out, tmp, n);
	out[n] = '\0';
	return 0;
}

void md_info_parse(const char *file, struct md_info *out)
{
	memset(out, 0, sizeof *out);
	const char *colon = strchr(file, ':');
	out->base_len = colon ? (size_t)(colon - file) : strlen(file);
	if (!colon)
		return;
	if (strncmp(colon, ":2,", 3) != 0) {
		out->problem = "info is not \":2,\"";
		return;
	}
	if (strchr(colon + 1, ':')) {
		out->problem = "':' inside the info";
		return;
	}
	out->has_info = true;
	if (strlen(colon + 3) > MD_FLAGS_MAX || md_flags_normalize(colon + 3, out->flags) != 0) {
		out->flags[0] = '\0';
		out->problem = "flags that are not letters";
	}
}

int64_t md_name_size(const char *file)
{
	struct md_info info;
	md_info_parse(file, &info);
	return md_base_size(file, info.base_len);
}

int64_t md_base_size(const char *file, size_t base_len)
{
	/* ",S=" is a field of the base name; search only there. */
	for (size_t i = 0; i + 3 < base_len; i++) {
		if (file[i] == ',' && file[i + 1] == 'S' && file[i + 2] == '=') {
			int64_t v = 0;
			size_t k = i + 3;
			if (k >= base_len || file[k] < '0' || file[k] > '9')
				return -1;
			for (; k < base_len && file[k] >= '0' && file[k] <= '9'; k++) {
				if (v > (INT64_MAX - 9) / 10)
					return -1;
				v = v * 10 + (file[k] - '0');
			}
			return v;
		}
	}
	return -1;
}
