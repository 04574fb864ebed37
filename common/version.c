/*
 * common/version.c — the version of the linked library.
 */
#include "mcrdt/version.h"

const char *mcrdt_version(int *major, int *minor, int *patch)
{
	if (major)
		*major = MCRDT_VERSION_MAJOR;
	if (minor)
		*minor = MCRDT_VERSION_MINOR;
	if (patch)
		*patch = MCRDT_VERSION_PATCH;
	return MCRDT_VERSION;
}
