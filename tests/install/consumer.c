/*
 * tests/install/consumer.c — a program built outside the tree against an
 * installed libmcrdt (through pkg-config or the CMake package). It checks
 * that the installed headers and the installed shared library agree and
 * prints "mcrdt <version>" for the test script to compare.
 */
#include <mcrdt/mcrdt.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	int major = -1, minor = -1, patch = -1;
	const char *v = mcrdt_version(&major, &minor, &patch);

	if (v == NULL || strcmp(v, MCRDT_VERSION) != 0) {
		fprintf(stderr, "consumer: library version \"%s\" != header MCRDT_VERSION \"%s\"\n",
			v ? v : "(null)", MCRDT_VERSION);
		return 1;
	}
	if (major != MCRDT_VERSION_MAJOR || minor != MCRDT_VERSION_MINOR ||
	    patch != MCRDT_VERSION_PATCH) {
		fprintf(stderr, "consumer: library version %d.%d.%d != header %d.%d.%d\n",
			major, minor, patch, MCRDT_VERSION_MAJOR, MCRDT_VERSION_MINOR,
			MCRDT_VERSION_PATCH);
		return 1;
	}

	const char *msg = mcrdt_strerror(MCRDT_ENOMEM);
	if (msg == NULL || msg[0] == '\0') {
		fprintf(stderr, "consumer: mcrdt_strerror(MCRDT_ENOMEM) is empty\n");
		return 1;
	}
	if (mcrdt_error_last() == NULL) {
		fprintf(stderr, "consumer: mcrdt_error_last() returned NULL\n");
		return 1;
	}

	printf("mcrdt %s\n", v);
	return 0;
}
