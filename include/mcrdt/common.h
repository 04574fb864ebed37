/*
 * mcrdt/common.h — export macro and conventions shared by every public header.
 *
 * Conventions (see docs/conventions.md): functions return int, 0 on success
 * or a negative MCRDT_E... code; outputs come first as pointers; whatever a
 * caller receives it frees with the matching _free function.
 */
#ifndef MCRDT_COMMON_H
#define MCRDT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define MCRDT_BEGIN_DECL extern "C" {
#define MCRDT_END_DECL }
#else
#define MCRDT_BEGIN_DECL
#define MCRDT_END_DECL
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MCRDT_EXTERN(type) extern __attribute__((visibility("default"))) type
#else
#define MCRDT_EXTERN(type) extern type
#endif

#endif
