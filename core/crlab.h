/* crlab.h -- the header C code includes. It supplies the standard integer
 * types and then the plain declarations of crlab_api.h, the same file the
 * LuaJIT FFI reads, so C and Lua see one API. */
#ifndef CRLAB_H
#define CRLAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "crlab_api.h"

#ifdef __cplusplus
}
#endif

#endif
