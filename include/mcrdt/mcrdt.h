/*
 * mcrdt/mcrdt.h — the umbrella header: include this one.
 */
#ifndef MCRDT_H
#define MCRDT_H

#include "mcrdt/common.h"
#include "mcrdt/errors.h"
#include "mcrdt/store.h"
#include "mcrdt/version.h"

#endif
