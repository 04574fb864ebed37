/*
 * cli/main.c — the mcrdt command: dispatch to subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "mcrdt/mcrdt.h"
#include "cli/cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "demo", cli_demo, "three replicas diverge and converge (crdt layer)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mcrdt [--version] [--help] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'mcrdt COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mcrdt %s\n", mcrdt_version(NULL, NULL, NULL));
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "mcrdt: unknown command '%s' (see 'mcrdt --help')\n", argv[1]);
	return 2;
}
