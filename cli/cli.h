/*
 * cli/cli.h — the subcommands of the mcrdt command. Each takes its own
 * argv (argv[0] is the subcommand's name) and returns the exit status.
 */
#ifndef MCRDT_CLI_H
#define MCRDT_CLI_H

int cli_demo(int argc, char **argv);

#endif
