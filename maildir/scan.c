/*
 * maildir/scan.c — reading what is in a folder, and what changed since the
 * last look, while other programs deliver, rename and delete under us.
 *
 * A listing is taken between two looks at the directories' mtimes; if
 * either moved, or a file vanished between readdir and stat, the listing
 * is taken again. A base name seen in both new/ and cur/ is a message that
 * moved during the listing: it counts once, in cur/. So a rename never
 * shows up as a delete plus an add, and never as a delete alone.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"

#define LIST_TRIES 8

void md_listing_free(struct md_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].file);
	free(l->e);
	memset(l, 0, sizeof *l);
}

void md_changes_free(struct md_changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->c[i].entry.file);
	free(c->c);
	memset(c, 0, sizeof *c);
}

void md_scan_state_free(struct md_scan_state *st)
{
	md_listing_free(&st->last);
	free(st->packed);
	memset(st, 0, sizeof *st);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int dir_mtime(int fd, const char *mailbox, int64_t *out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return err_sys(MCRDT_EIO, "cannot stat a directory of %s", mailbox);
	*out = mtime_ns(&st);
	return 0;
}

static int push(struct md_listing *l, struct md_entry *e)
{
	int rc = GROW(l->e, l->cap, l->n + 1);
	if (rc)
		return rc;
	l->e[l->n++] = *e;
	return 0;
}

/* What a file's name and type say of it; size and mtime from st when given. */
const char md_problem_empty[] = "an empty file";

static void describe(struct md_entry *e, const char *name, bool in_new, unsigned pass, const struct stat *st,
		     unsigned char type)
{
	struct md_info info;
	md_info_parse(name, &info);
	e->base_len = info.base_len;
	e->in_new = in_new;
	e->pass = pass;
	memcpy(e->flags, info.flags, sizeof e->flags);
	e->problem = info.problem;
	if (type == DT_LNK)
		e->problem = "a symbolic link";
	else if (type != DT_REG)
		e->problem = "not a regular file";
	else if (st && st->st_size == 0)
		e->problem = md_problem_empty;
	e->size = md_base_size(name, info.base_len);
	if (e->size < 0 && st)
		e->size = st->st_size;
	e->mtime = st ? st->st_mtim.tv_sec : -1;
}

static unsigned char mode_type(mode_t m)
{
	return S_ISREG(m) ? DT_REG : S_ISLNK(m) ? DT_LNK : DT_UNKNOWN;
}

/*
 * Reads one of new/ and cur/ into l; with full, every file is stat'ed
 * (else only those whose type readdir does not tell). Returns 1 when a
 * file vanished between readdir and stat: it was renamed or removed under
 * us, so the pass is not to be trusted alone.
 */
static int read_dir(int dirfd, bool in_new, unsigned pass, bool full, const char *mailbox, struct md_listing *l)
{
	DIR *d = dir_stream(dirfd, mailbox);
	if (!d)
		return MCRDT_EIO;
	int rc = 0, moved = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		unsigned char type = de->d_type;
		bool looked = full || type == DT_UNKNOWN;
		if (looked) {
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
				if (errno == ENOENT)
					moved = 1;
				else
					rc = err_sys(MCRDT_EIO, "cannot stat %s in %s", de->d_name, mailbox);
				continue;
			}
			type = mode_type(st.st_mode);
		}
		struct md_entry e = { 0 };
		describe(&e, de->d_name, in_new, pass, looked ? &st : NULL, type);
		if (!(e.file = strdup(de->d_name)))
			rc = err_set(MCRDT_ENOMEM, "out of memory listing a folder");
		else if ((rc = push(l, &e)))
			free(e.file);
	}
	closedir(d);
	return rc ? rc : moved;
}

/* Two base names: the first alen bytes of a, the first blen of b. */
static int base_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : alen < blen ? -1 : alen > blen;
}

static int cmp_base(const struct md_entry *a, const struct md_entry *b)
{
	return base_cmp(a->file, a->base_len, b->file, b->base_len);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;
	int c = cmp_base(x, y);
	if (c)
		return c;
	/* The latest pass first, and in it cur/ before new/: the dedup below
	 * keeps the newest sighting of a message that moved while we looked. */
	if (x->pass != y->pass)
		return x->pass > y->pass ? -1 : 1;
	return (int)x->in_new - (int)y->in_new;
}

/*
 * Sorts l by cmp_entry. Sorting the 80-byte entries themselves, one string
 * compare each step, cost more than reading the directory; this sorts
 * keys of the first 16 bytes of each base name instead (Maildir names
 * differ early: the seconds, then the microseconds) and compares names
 * only when those are equal. Bytes past a name's end count as zero, which
 * keeps a prefix first as cmp_base does (a name holds no NUL).
 */
struct sort_key {
	uint64_t k0, k1;
	const struct md_entry *e;
};

static uint64_t key_bytes(const char *s, size_t len)
{
	uint64_t k = 0;
	for (size_t i = 0; i < 8; i++)
		k = k << 8 | (i < len ? (uint8_t)s[i] : 0);
	return k;
}

static int cmp_key(const void *a, const void *b)
{
	const struct sort_key *x = a, *y = b;
	if (x->k0 != y->k0)
		return x->k0 < y->k0 ? -1 : 1;
	if (x->k1 != y->k1)
		return x->k1 < y->k1 ? -1 : 1;
	return cmp_entry(x->e, y->e);
}

/* Byte d (0 the most significant) of k's 16-byte key. */
static unsigned key_byte(const struct sort_key *k, unsigned d)
{
	return d < 8 ? (unsigned)(k->k0 >> (8 * (7 - d))) & 0xff : (unsigned)(k->k1 >> (8 * (15 - d))) & 0xff;
}

/*
 * LSD radix sort of k by its 16-byte key, a byte at a time, skipping the
 * bytes all keys share (a folder's names share their leading digits);
 * then each run of equal keys by cmp_entry. O(n) where qsort's string
 * compares were a quarter of a scan.
 */
static void radix_keys(struct sort_key *k, struct sort_key *tmp, size_t n)
{
	for (unsigned d = 16; d-- > 0;) {
		size_t count[256] = { 0 };
		for (size_t i = 0; i < n; i++)
			count[key_byte(&k[i], d)]++;
		if (count[key_byte(&k[0], d)] == n)
			continue; /* the same byte everywhere */
		size_t pos = 0;
		for (unsigned b = 0; b < 256; b++) {
			size_t c = count[b];
			count[b] = pos;
			pos += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[count[key_byte(&k[i], d)]++] = k[i];
		memcpy(k, tmp, n * sizeof *k);
	}
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && k[j].k0 == k[i].k0 && k[j].k1 == k[i].k1)
			j++;
		if (j - i > 1)
			qsort(k + i, j - i, sizeof *k, cmp_key);
		i = j;
	}
}

static int sort_listing(struct md_listing *l)
{
	struct sort_key *k = malloc(2 * l->n * sizeof *k);
	struct md_entry *v = malloc(l->n * sizeof *v);
	if (!k || !v) {
		free(k);
		free(v);
		return err_set(MCRDT_ENOMEM, "out of memory sorting a listing");
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct md_entry *e = &l->e[i];
		size_t bl = e->base_len;
		k[i] = (struct sort_key){ key_bytes(e->file, bl), bl > 8 ? key_bytes(e->file + 8, bl - 8) : 0, e };
	}
	radix_keys(k, k + l->n, l->n);
	for (size_t i = 0; i < l->n; i++)
		v[i] = *k[i].e;
	free(k);
	free(l->e);
	l->e = v;
	l->cap = l->n;
	return 0;
}

/* Sorts l and drops the second sighting of each message (cmp_entry puts
 * the one to keep first). */
static int finish_listing(struct md_listing *l)
{
	int rc = l->n ? sort_listing(l) : 0;
	size_t k = 0;
	for (size_t i = 0; rc == 0 && i < l->n; i++) {
		if (k && cmp_base(&l->e[k - 1], &l->e[i]) == 0) {
			free(l->e[i].file); /* the same message seen again */
			continue;
		}
		l->e[k++] = l->e[i];
	}
	if (rc == 0)
		l->n = k;
	return rc;
}

static int list_folder(md *m, const char *mailbox, bool full, struct md_listing *out)
{
	struct md_folder *f;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc)
		return rc;
	/*
	 * Passes go on until one sees both directories unchanged throughout.
	 * If none does, the union of all passes is kept: a message that moved
	 * is then seen at least once, so it is never reported as deleted; a
	 * real deletion shows at the next scan instead.
	 */
	struct md_listing l = { 0 };
	for (unsigned pass = 0; pass < LIST_TRIES; pass++) {
		int64_t n0 = 0, c0 = 0, n1 = 0, c1 = 0;
		size_t before = l.n;
		if ((rc = dir_mtime(f->new, mailbox, &n0)) || (rc = dir_mtime(f->cur, mailbox, &c0)))
			break;
		int moved = read_dir(f->new, true, pass, full, mailbox, &l);
		if (moved >= 0) {
			int moved2 = read_dir(f->cur, false, pass, full, mailbox, &l);
			moved = moved2 < 0 ? moved2 : moved | moved2;
		}
		if ((rc = moved < 0 ? moved : 0))
			break;
		if ((rc = dir_mtime(f->new, mailbox, &n1)) || (rc = dir_mtime(f->cur, mailbox, &c1)))
			break;
		if (!moved && n0 == n1 && c0 == c1) {
			/* A clean pass stands alone. */
			for (size_t i = 0; i < before; i++)
				free(l.e[i].file);
			if (l.n > before)
				memmove(l.e, l.e + before, (l.n - before) * sizeof *l.e);
			l.n -= before;
			break;
		}
	}
	if (rc == 0)
		rc = finish_listing(&l);
	if (rc < 0) {
		md_listing_free(&l);
		return rc;
	}
	*out = l;
	return 0;
}

/*
 * Whether a directory whose mtime is t (ns) is still as a listing begun
 * at `at` (ns, on the clock that stamps t) saw it, so long as t stays:
 * whether every change since the listing began moved it. Where mtimes are
 * the local clock's nanoseconds (fine), at past t says so: a change after
 * the clock moved on gets a later stamp. Elsewhere (whole seconds: ext3,
 * small ext4 inodes, a server's clock) only a t in a second before at's,
 * since a change later in t's second might have left it as it was.
 */
static bool stands(int64_t t, int64_t at, bool fine)
{
	if (at <= 0)
		return false;
	return fine && t % 1000000000 ? t < at : t / 1000000000 < at / 1000000000;
}

/*
 * Into *out, when only one of f's directories moved since st's listing
 * (nm, cm: their mtimes now), that one read and the other's entries taken
 * from st: the other stands as listed if its mtime is the one recorded (see
 * stands(), as for the whole folder in md_scan). A delivery into new/ then
 * costs a read of new/, not of a cur/ of 100,000 files. 1 (nothing in
 * *out) when both moved, when a file left the directory read, or when
 * anything moved while it was read: the caller reads both.
 */
static int list_moved_dir(struct md_folder *f, const char *mailbox, struct md_scan_state *st, int64_t nm,
			  int64_t cm, bool fine, struct md_listing *out)
{
	bool new_same = nm == st->new_mtime_ns && stands(nm, st->scanned_at_ns, fine);
	bool cur_same = cm == st->cur_mtime_ns && stands(cm, st->scanned_at_ns, fine);
	if (!st->valid || new_same == cur_same || md_scan_state_ready(st) != 0)
		return 1;
	bool in_new = !new_same; /* the directory to read */
	struct md_listing l = { 0 };
	int64_t n1 = 0, c1 = 0;
	int rc = read_dir(in_new ? f->new : f->cur, in_new, 0, false, mailbox, &l);
	if (rc == 0 && (rc = dir_mtime(f->new, mailbox, &n1)) == 0 && (rc = dir_mtime(f->cur, mailbox, &c1)) == 0 &&
	    (n1 != nm || c1 != cm))
		rc = 1;
	if (rc == 0)
		rc = finish_listing(&l);
	/* A file gone from the directory read may have stood for a message
	 * the other directory holds too (the listing keeps one of the two): a
	 * full read tells a move from a removal. */
	for (size_t i = 0, k = 0; rc == 0 && i < st->last.n; i++) {
		const struct md_entry *e = &st->last.e[i];
		if (e->in_new != in_new)
			continue;
		while (k < l.n && cmp_base(&l.e[k], e) < 0)
			k++;
		if (k == l.n || cmp_base(&l.e[k], e) != 0)
			rc = 1;
	}
	for (size_t i = 0; rc == 0 && i < st->last.n; i++) {
		struct md_entry e = st->last.e[i];
		if (e.in_new == in_new)
			continue;
		e.pass = 0; /* (one pass with the directory read) */
		if (!(e.file = strdup(e.file)))
			rc = err_set(MCRDT_ENOMEM, "out of memory listing a folder");
		else if ((rc = push(&l, &e)))
			free(e.file);
	}
	if (rc == 0)
		rc = finish_listing(&l);
	if (rc)
		md_listing_free(&l);
	else
		*out = l;
	st->dirs_read++;
	return rc;
}

int md_list(md *m, const char *mailbox, struct md_listing *out)
{
	return list_folder(m, mailbox, true, out);
}

static int change(struct md_changes *out, enum md_change_kind kind, const struct md_entry *e)
{
	int rc = GROW(out->c, out->cap, out->n + 1);
	if (rc)
		return rc;
	struct md_change *c = &out->c[out->n];
	c->kind = kind;
	c->entry = *e;
	if (!(c->entry.file = strdup(e->file)))
		return err_set(MCRDT_ENOMEM, "out of memory");
	out->n++;
	return 0;
}

/* Fills in what only a stat tells of a changed file. Returns 1 when the
 * file is no longer there (it moved since the listing): the entry stays
 * as listed. */
static int look(struct md_folder *f, const char *mailbox, struct md_entry *e)
{
	struct stat st;
	if (fstatat(e->in_new ? f->new : f->cur, e->file, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 1 : err_sys(MCRDT_EIO, "cannot stat %s in %s", e->file, mailbox);
	describe(e, e->file, e->in_new, e->pass, &st, mode_type(st.st_mode));
	return 0;
}

/* The differences between two listings, each added or renamed file stat'ed
 * (so the cost is the listing's plus one stat per change). Returns 1 when
 * a changed file moved before its stat. */
static int diff(struct md_folder *f, const char *mailbox, const struct md_listing *now,
		const struct md_listing *was, struct md_changes *out)
{
	size_t i = 0, j = 0, from = out->n;
	int rc = 0, moved = 0;
	while (rc == 0 && (i < now->n || j < was->n)) {
		int c = i == now->n ? 1 : j == was->n ? -1 : cmp_base(&now->e[i], &was->e[j]);
		if (c < 0) {
			rc = change(out, MD_ADDED, &now->e[i++]);
		} else if (c > 0) {
			rc = change(out, MD_VANISHED, &was->e[j++]);
		} else {
			if (now->e[i].in_new != was->e[j].in_new || strcmp(now->e[i].file, was->e[j].file) != 0)
				rc = change(out, MD_FLAGS_CHANGED, &now->e[i]);
			i++, j++;
		}
	}
	for (size_t k = from; rc >= 0 && k < out->n; k++)
		if (out->c[k].kind != MD_VANISHED && (rc = look(f, mailbox, &out->c[k].entry)) > 0)
			moved = 1, rc = 0;
	return rc < 0 ? rc : moved;
}

/* Where base (len bytes) is in the sorted l, or l->n. */
static size_t find_base(const struct md_listing *l, const char *base, size_t len)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (base_cmp(l->e[mid].file, l->e[mid].base_len, base, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n && base_cmp(l->e[lo].file, l->e[lo].base_len, base, len) == 0 ? lo : l->n;
}

void md_entry_describe(struct md_entry *e, const char *file, bool in_new)
{
	memset(e, 0, sizeof *e);
	describe(e, file, in_new, 0, NULL, DT_REG);
	e->file = (char *)(uintptr_t)file;
}

/* ---- a listing as bytes ---- */

/* The base name of a packed entry's file: up to its ':' (md_info_parse). */
static size_t packed_base_len(const uint8_t *f, size_t len)
{
	const uint8_t *colon = memchr(f, ':', len);
	return colon ? (size_t)(colon - f) : len;
}

void md_listing_pack(const struct md_listing *l, struct vbuf *out)
{
	vput(out, l->n);
	for (size_t i = 0; i < l->n; i++) {
		vput(out, l->e[i].in_new);
		vput_bytes(out, l->e[i].file, strlen(l->e[i].file));
	}
}

bool md_scan_state_adopt(struct md_scan_state *st, uint8_t *buf, size_t at, size_t end)
{
	/* The form, without a name parsed or a byte copied: sorted by base
	 * name, each base once, names a directory entry can have. */
	struct vreader r = { buf + at, buf + end, 0 };
	uint64_t n = vread_max(&r, (end - at) / 2, "listing entries");
	const uint8_t *prev = NULL;
	size_t prev_len = 0;
	for (uint64_t i = 0; i < n && !r.err; i++) {
		vread_max(&r, 1, "listing entry"); /* in_new */
		uint64_t fl = vread_max(&r, NAME_MAX, "listing name");
		const uint8_t *f = vread_bytes(&r, fl, "listing name");
		size_t bl = f ? packed_base_len(f, fl) : 0;
		if (!f || !fl || memchr(f, '/', fl) || memchr(f, '\0', fl) ||
		    (prev && base_cmp((const char *)prev, prev_len, (const char *)f, bl) >= 0))
			r.err = MCRDT_ECORRUPT;
		prev = f;
		prev_len = bl;
	}
	if (r.err || r.p != r.end) {
		free(buf);
		return false;
	}
	md_listing_free(&st->last);
	free(st->packed);
	st->packed = buf;
	st->packed_at = at;
	st->packed_end = end;
	return true;
}

int md_scan_state_ready(struct md_scan_state *st)
{
	if (!st->packed)
		return 0;
	struct vreader r = { st->packed + st->packed_at, st->packed + st->packed_end, 0 };
	uint64_t n = vread(&r);
	struct md_listing l = { 0 };
	int rc = RESERVE(l.e, l.cap, n ? n : 1);
	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		bool in_new = vread(&r) != 0;
		uint64_t fl = vread(&r);
		const uint8_t *f = vread_bytes(&r, fl, "listing name");
		char *file = f ? strndup((const char *)f, fl) : NULL;
		if (!file)
			rc = err_set(MCRDT_ENOMEM, "out of memory");
		else
			md_entry_describe(&l.e[l.n++], file, in_new);
	}
	if (rc) {
		md_listing_free(&l);
		return rc; /* (still packed: the next call tries again) */
	}
	md_listing_free(&st->last);
	st->last = l;
	free(st->packed);
	st->packed = NULL;
	return 0;
}

/* One settled own change, for sorting: by base, then in the order made. */
struct own_ref {
	struct md_own *o;
	size_t seq;
};

static int own_base_cmp(const struct md_own *a, const struct md_own *b)
{
	return base_cmp(a->file, a->base_len, b->file, b->base_len);
}

static int cmp_own(const void *a, const void *b)
{
	const struct own_ref *x = a, *y = b;
	int c = own_base_cmp(x->o, y->o);
	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Applies the settled own changes to mailbox's st->last (see
 * md_own_settle) and forgets them; unsettled ones stay for later. Per base
 * name only the last change counts: the file it left, or none. Sorted by
 * base, they merge into the listing in one pass (a full sync writes
 * hundreds of thousands); the listing is rebuilt only when files came or
 * went, not for renames.
 */
static int fold_own(md *m, const char *mailbox, struct md_scan_state *st)
{
	struct md_own_box *box = md_own_box(m, mailbox);
	if (!box)
		return 0;
	if (st->valid && box->settled) {
		int rc = md_scan_state_ready(st);
		if (rc)
			return rc; /* (the changes stay for the next fold) */
	}
	size_t nr = st->valid ? box->settled : 0, ngone = 0;
	struct own_ref *r = nr ? malloc(nr * sizeof *r) : NULL;
	int rc = nr && !r ? err_set(MCRDT_ENOMEM, "out of memory") : 0;
	if (rc)
		nr = 0;
	for (size_t i = 0; i < nr; i++)
		r[i] = (struct own_ref){ &box->v[i], i };
	if (nr)
		qsort(r, nr, sizeof *r, cmp_own);
	struct md_listing add = { 0 };
	bool *gone = NULL;
	for (size_t i = 0; rc == 0 && i < nr; i++) {
		struct md_own *o = r[i].o;
		if (i + 1 < nr && own_base_cmp(o, r[i + 1].o) == 0)
			continue; /* a later change of the same base follows */
		size_t at = find_base(&st->last, o->file, o->base_len);
		if (o->removed) {
			if (at < st->last.n && !gone && !(gone = calloc(st->last.n, sizeof *gone)))
				rc = err_set(MCRDT_ENOMEM, "out of memory");
			else if (at < st->last.n && !gone[at])
				gone[at] = true, ngone++;
			continue;
		}
		struct md_entry e;
		md_entry_describe(&e, o->file, o->in_new);
		o->file = NULL; /* the listing's now */
		if (at < st->last.n) {
			free(st->last.e[at].file);
			st->last.e[at] = e;
		} else if ((rc = GROW(add.e, add.cap, add.n + 1)) == 0) {
			add.e[add.n++] = e;
		} else {
			free(e.file);
		}
	}
	free(r);
	if (nr)
		st->version++;
	if (rc == 0 && (add.n || ngone)) {
		/* What stays of last and what was added, both sorted: merged. */
		size_t total = st->last.n - ngone + add.n;
		struct md_entry *v = malloc((total ? total : 1) * sizeof *v);
		if (!v) {
			rc = err_set(MCRDT_ENOMEM, "out of memory");
		} else {
			size_t n = 0, i = 0, j = 0;
			while (i < st->last.n || j < add.n) {
				if (i < st->last.n && gone && gone[i])
					free(st->last.e[i++].file);
				else if (j == add.n || (i < st->last.n && cmp_base(&st->last.e[i], &add.e[j]) < 0))
					v[n++] = st->last.e[i++];
				else
					v[n++] = add.e[j++];
			}
			free(st->last.e);
			st->last.e = v;
			st->last.n = st->last.cap = n;
			add.n = 0;
		}
	}
	md_listing_free(&add);
	free(gone);
	/* Every settled change of mailbox is spent; the pending ones move up. */
	for (size_t i = 0; i < box->settled; i++)
		free(box->v[i].file);
	memmove(box->v, box->v + box->settled, (box->n - box->settled) * sizeof *box->v);
	m->nown -= box->settled;
	box->n -= box->settled;
	box->settled = 0;
	box->byname_ok = false;
	if (rc)
		st->valid = false; /* compare everything next time */
	return rc;
}

int md_scan_fold(md *m, const char *mailbox, struct md_scan_state *st)
{
	md_watch_drain(m); /* (the notes about to be spent explain these events) */
	return fold_own(m, mailbox, st);
}

void md_scan_forget(md *m, const char *mailbox)
{
	md_watch_dirty(m, mailbox);
}

void md_scan_unsee(struct md_scan_state *st, const bool *drop)
{
	size_t w = 0;
	for (size_t i = 0; i < st->last.n; i++) {
		if (drop[i])
			free(st->last.e[i].file);
		else
			st->last.e[w++] = st->last.e[i];
	}
	if (w == st->last.n)
		return;
	st->last.n = w;
	st->scanned_at_ns = 0; /* (read again even if the directories did not move) */
	st->version++;
}

struct md_entry *md_listing_find(const struct md_listing *l, const char *base, size_t len)
{
	size_t at = find_base(l, base, len);
	return at < l->n ? &l->e[at] : NULL;
}

int md_entry_cmp(const struct md_entry *a, const struct md_entry *b)
{
	return cmp_base(a, b);
}

/*
 * When a listing of f starts (ns), on the clock that stamps f's mtimes:
 * the local one as it stamps them (the coarse clock), or on a shared file
 * system the server's, read off a file made in tmp/ for the purpose under
 * a delivery's unique name (the next scan compares the mtimes with it, and
 * a client clock ahead of the server's would make a change later in the
 * listing's second look older). 0 when that file cannot be made: the next
 * scan reads the folder again.
 */
static int64_t scan_clock(struct md_folder *f)
{
	struct timespec ts;
	if (!md_shared_fs(f->cur))
		return clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0 ? (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec : 0;
	char name[NAME_MAX + 1];
	struct stat sb;
	int fd = md_unique_name(name, sizeof name, 0) ? -1
		 : openat(f->tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	int64_t t = fstat(fd, &sb) == 0 ? mtime_ns(&sb) : 0;
	close(fd);
	unlinkat(f->tmp, name, 0); /* (a leftover goes with tmp/'s old files) */
	return t;
}

int md_scan(md *m, const char *mailbox, struct md_scan_state *st, struct md_changes *out)
{
	struct md_folder *f;
	int64_t nm = 0, cm = 0;
	int rc = md_scan_fold(m, mailbox, st);
	/* The live folder: another program may have made it again, and a
	 * watch on the old directories does not see a rename of their parent. */
	if (rc == 0)
		rc = md_folder_open_live(m, mailbox, &f);
	struct md_watch *w = md_watch_find(m, mailbox);
	struct stat sn, sc;
	if (rc == 0 && md_watch_armed(w) &&
	    (fstat(f->new, &sn) != 0 || fstat(f->cur, &sc) != 0 || sc.st_dev != w->dev || sn.st_ino != w->ino_new ||
	     sc.st_ino != w->ino_cur)) {
		/* Another folder than the one watched (made again while out of
		 * the folder cache, where open_live could not tell). */
		md_watch_forget(m, mailbox);
		w = NULL;
	}
	bool fresh = !md_watch_armed(w);
	if (rc == 0 && st->valid && !fresh && !w->dirty)
		return 0; /* watched since its last listing, and nothing but ours happened */
	/* A watch is armed before the mtimes are read: what they miss, it sees. */
	if (rc == 0 && fresh)
		w = md_watch_add(m, f, mailbox);
	if (rc || (rc = dir_mtime(f->new, mailbox, &nm)) || (rc = dir_mtime(f->cur, mailbox, &cm)))
		return rc;
	if (w)
		w->dirty = false; /* what happens from here on shows at the next scan */
	/* Unchanged since a listing no change since could have escaped (see
	 * stands()); not for a folder whose watch saw something (a file written
	 * in place moves no mtime). */
	bool fine = md_fine_mtimes(f->cur);
	if (fresh && st->valid && nm == st->new_mtime_ns && cm == st->cur_mtime_ns &&
	    stands(nm, st->scanned_at_ns, fine) && stands(cm, st->scanned_at_ns, fine))
		return 0;
	int64_t started = scan_clock(f);
	struct md_listing now;
	if ((rc = list_moved_dir(f, mailbox, st, nm, cm, fine, &now)) == 1 &&
	    (rc = list_folder(m, mailbox, false, &now)) == 0)
		st->dirs_read += 2;
	if (rc)
		return rc;
	int moved = 0;
	if (out && (moved = md_scan_state_ready(st)) == 0)
		moved = diff(f, mailbox, &now, &st->last, out);
	if (moved < 0) {
		md_listing_free(&now);
		return moved;
	}
	md_listing_free(&st->last);
	free(st->packed); /* (a first look's: never read in) */
	st->packed = NULL;
	st->last = now;
	st->new_mtime_ns = nm;
	st->cur_mtime_ns = cm;
	/* A file that moved while we looked: the next scan reads again. */
	st->scanned_at_ns = moved ? 0 : started;
	st->valid = true;
	st->rescans++;
	st->version++;
	return 0;
}

int md_tmp_clean(md *m, const char *mailbox, int64_t now, size_t *removed_out)
{
	struct md_folder *f;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc)
		return rc;
	DIR *d = dir_stream(f->tmp, "a tmp/ directory");
	if (!d)
		return MCRDT_EIO;
	size_t removed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(f->tmp, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		/* Both times old: a delivery sets a message's mtime to its internal
		 * date while it is still in tmp/, but nobody can set the ctime back. */
		if (!S_ISDIR(st.st_mode) && st.st_mtime < now - MD_TMP_MAX_AGE &&
		    st.st_ctime < now - MD_TMP_MAX_AGE && unlinkat(f->tmp, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed_out)
		*removed_out = removed;
	return 0;
}
