/* tests/fuzz/fuzz_lua.c -- one harness for the parsers written in Lua:
 * embeds LuaJIT, loads tests/fuzz/lua/<FUZZ_TARGET>.lua (a table with
 * setup(dir) and run(data, dir)) and calls run under pcall for each input,
 * with dir a scratch folder of this process. The parser's own errors are
 * fine (those raised by error()); an error raised by Lua itself (attempt
 * to index a nil value, a bad argument, a stack overflow, table index is
 * nil, an FFI conversion) means the parser missed a case, and the harness
 * aborts so libFuzzer keeps the input.
 *
 * Only this file is instrumented: the parsers run in LuaJIT, and the C
 * they call is the plain libcrlab.so named by CRLAB_LIB (the Makefile
 * points it at core/build/libcrlab.so). libFuzzer still sees the Lua
 * side's coverage: a line hook (with the JIT off, since compiled code calls
 * no hooks) counts each (function, line, previous line) in libFuzzer's
 * extra counters. */
#include <lauxlib.h>
#include <luajit.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the script tests/fuzz/lua/FUZZ_TARGET.lua"
#endif
#ifndef CRLAB_ROOT
#define CRLAB_ROOT "."
#endif

static lua_State *L;

__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_cov[1 << 16];
static uintptr_t lua_prev;

static void line_hook(lua_State *S, lua_Debug *ar)
{
    if (!lua_getinfo(S, "S", ar)) return;
    uintptr_t here = ((uintptr_t)ar->source * 31u + (uintptr_t)ar->currentline * 2654435761u);
    size_t slot = (size_t)((here ^ (lua_prev >> 1)) * 0x9E3779B97F4A7C15ull >> 48);
    if (lua_cov[slot] < 255) lua_cov[slot]++;
    lua_prev = here;
}
static char dir[4096];


static void remove_dir(void)
{
    if (!dir[0]) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *root = getenv("CRLAB_HOME");
    if (root == NULL || !*root) {
        root = CRLAB_ROOT;
        setenv("CRLAB_HOME", root, 1);
    }
    if (getenv("CRLAB_LIB") == NULL) {
        static char lib[4096];
        snprintf(lib, sizeof lib, "%s/core/build/libcrlab.so", root);
        setenv("CRLAB_LIB", lib, 1);
    }
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/crlab-fuzz-%s-XXXXXX", tmp, FUZZ_TARGET);
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        abort();
    }
    atexit(remove_dir);
    L = luaL_newstate();
    luaL_openlibs(L);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    char code[12000];
    snprintf(code, sizeof code,
             "package.path = '%s/lua/?.lua;%s/lua/?/init.lua;' .. package.path\n"
             "local t = dofile('%s/tests/fuzz/lua/%s.lua')\n"
             "if t.setup then t.setup(...) end\n"
             "FUZZ_RUN = t.run\n",
             root, root, root, FUZZ_TARGET);
    if (luaL_loadstring(L, code) != 0 || (lua_pushstring(L, dir), lua_pcall(L, 1, 0, 0)) != 0) {
        fprintf(stderr, "fuzz: setup of %s failed: %s\n", FUZZ_TARGET, lua_tostring(L, -1));
        abort();
    }
    lua_sethook(L, line_hook, LUA_MASKLINE, 0);
    return 0;
}

static int traceback(lua_State *S)
{
    const char *msg = lua_tostring(S, 1);
    luaL_traceback(S, S, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int top = lua_gettop(L);
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "FUZZ_RUN");
    lua_pushlstring(L, (const char *)data, size);
    lua_pushstring(L, dir);
    if (lua_pcall(L, 2, 0, top + 1) != 0) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL) msg = "(error object is not a string)";
        /* The parser's own messages are raised by error() (crlab's C
         * errors too, through core.check): the traceback then starts at
         * error. Anything else was raised by Lua itself. The message
         * text is not what decides, since it may quote the input. */
        const char *tb = NULL; /* the last: the message may quote the input, a traceback too */
        for (const char *p = strstr(msg, "\nstack traceback:\n\t"); p; p = strstr(p + 1, "\nstack traceback:\n\t"))
            tb = p;
        if (tb == NULL || strncmp(tb + 19, "[C]: in function 'error'", 24) != 0) {
            fprintf(stderr, "fuzz: %s raised an internal Lua error:\n%s\n", FUZZ_TARGET, msg);
            abort();
        }
    }
    lua_settop(L, top);
    return 0;
}
