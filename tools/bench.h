/*
 * bench.h - `weft bench ...` subcommands (tools/bench_*.c).
 */
#ifndef WEFT_TOOLS_BENCH_H
#define WEFT_TOOLS_BENCH_H

/* `weft bench text TRACE.json.gz [--mode local|remote] [--runs N]`, with
 * argv starting after "text". Prints one JSON object; returns the exit
 * status (0 ok, 1 failed, 2 usage). */
int weft__tool_bench_text(int argc, char **argv);

#endif
