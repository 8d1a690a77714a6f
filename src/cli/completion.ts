import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions, taskOptions, type OptionSpec } from "./options.js";
import { writeBytes } from "./output.js";

/** Usage of `drce completion`. */
export const completionUsage = `usage: drce completion bash|zsh

Prints a completion script for the shell: command names, each command's flags, the
subcommands of drce node, and the ids and aliases of the node's tasks (from drce ls,
with --server, --token and the TLS flags already on the line, and a 1 s connect
timeout) where a command takes a task. Load it in the shell's startup file:
  bash:  source <(drce completion bash)           (in ~/.bashrc)
  zsh:   source <(drce completion zsh)            (in ~/.zshrc; uses bashcompinit)
or install it once: drce completion bash > /etc/bash_completion.d/drce

Exit status: 0; 2 unknown shell.`;

/** What the completion script needs to know of one command: its name and its usage text. */
export interface CompletableCommand {
  /** The usage text `drce help COMMAND` prints. */
  readonly usage: string;
}

/** The words the completion of each command offers, and which of its flags take a value. */
export interface CompletionModel {
  /** Command names, in the order `drce help` lists them, `help` included. */
  readonly commands: readonly string[];
  /** Flags (`--name`, `-x`) of each command. */
  readonly flags: Readonly<Record<string, readonly string[]>>;
  /** Flags whose next word is a value (completed as a file name). */
  readonly valueFlags: readonly string[];
  /** Commands whose arguments are task ids or aliases. */
  readonly taskCommands: readonly string[];
  /** Subcommands of the commands that have them (`drce node info`, ...). */
  readonly subcommands: Readonly<Record<string, readonly string[]>>;
}

// Flags of the words before the command (see runCli).
const globalFlags = ["--server", "--token", "--token-file", "--connect-timeout", "--json", "--help", "--version"];
// The flags that name the node, which `drce ls` needs to list the ids of the right one.
const connectionFlags = ["--server", "--token", "--token-file", "--cacert", "--cert", "--cert-key"];
// Commands that take the task options of `run` (the table they spread into theirs).
const taskSpecCommands = new Set(["run", "submit"]);

/**
 * Builds what the completion scripts offer from the CLI's own definitions: the command
 * table, the option tables the commands spread into theirs (`commonOptions`, `taskOptions`),
 * the flags each usage text documents, and the serve options table.
 */
export function completionModel(commands: Readonly<Record<string, CompletableCommand>>, serveFlags: readonly { flag: string; takesValue: boolean }[]): CompletionModel {
  const flags: Record<string, string[]> = {};
  const valueFlags = new Set<string>([...optionFlags(commonOptions, true), ...optionFlags(taskOptions, true)]);
  const taskCommands: string[] = [];
  const subcommands: Record<string, string[]> = {};
  for (const [name, command] of Object.entries(commands)) {
    const own = new Set<string>();
    if (name === "serve") {
      for (const option of serveFlags) own.add(`--${option.flag}`);
      for (const option of serveFlags.filter((o) => o.takesValue)) valueFlags.add(`--${option.flag}`);
      own.add("--help");
    } else {
      const synopsis = command.usage.split("\n")[0] ?? "";
      // A command that talks to a node names it with --server; its table spreads commonOptions.
      if (taskSpecCommands.has(name) || synopsis.includes("--server")) for (const flag of optionFlags(commonOptions, false)) own.add(flag);
      if (taskSpecCommands.has(name)) for (const flag of optionFlags(taskOptions, false)) own.add(flag);
      for (const flag of usageFlags(command.usage)) own.add(flag);
      own.add("--help");
    }
    flags[name] = [...own].sort();
    const synopsis = command.usage.split("\n")[0] ?? "";
    // Its arguments are tasks when the synopsis ends with them (`... REF`, `... REF...`).
    if (/\sREF(\.\.\.)?\s*$/.test(synopsis)) taskCommands.push(name);
    if (/\bSUBCOMMAND\b/.test(synopsis)) subcommands[name] = [...command.usage.matchAll(/^ {2}([a-z][a-z-]*)(?= |$)/gm)].map((m) => m[1] ?? "");
  }
  return { commands: [...Object.keys(commands), "help"], flags, valueFlags: [...valueFlags].sort(), taskCommands, subcommands };
}

/** `--name` (and `-x`) of every option of a parseArgs table; with `valuesOnly`, those that take a value. */
function optionFlags(options: OptionSpec, valuesOnly: boolean): string[] {
  return Object.entries(options).flatMap(([name, option]) => {
    if (valuesOnly && option.type !== "string") return [];
    return [`--${name}`, ...(option.short === undefined ? [] : [`-${option.short}`])];
  });
}

/**
 * The flags a usage text documents for its own command: those of its synopsis (the first
 * line) and those that open a line of its option list (`  -f, --follow  ...`); flags the
 * prose mentions in passing (another command's, the node's) are not the command's.
 */
function usageFlags(usage: string): string[] {
  const [synopsis = "", ...rest] = usage.split("\n");
  const entries = rest.flatMap((line) => /^\s{2,}((?:-[a-zA-Z](?:, |\/))?--[a-z][a-z0-9-]*)/.exec(line)?.[1] ?? []);
  const text = [synopsis, ...entries].join(" ");
  const long = [...text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => `--${m[1]}`);
  const short = [...text.matchAll(/(?<=[[\s|])-([a-zA-Z])(?=[\s,\]|/])/g)].map((m) => `-${m[1]}`);
  return [...long, ...short];
}

/** The bash completion script of a model: a `_drce` function registered with `complete -F`. */
export function bashCompletion(model: CompletionModel): string {
  const quote = (words: readonly string[]): string => `"${words.join(" ")}"`;
  const variable = (name: string): string => name.replace(/[^A-Za-z0-9]/g, "_");
  const lines = [
    "# bash completion for drce (drce completion bash); load with: source <(drce completion bash)",
    `_drce_commands=${quote(model.commands)}`,
    `_drce_global_flags=${quote(globalFlags)}`,
    `_drce_value_flags=${quote(model.valueFlags)}`,
    `_drce_task_commands=${quote(model.taskCommands)}`,
    ...Object.entries(model.flags).map(([name, flags]) => `_drce_flags_${variable(name)}=${quote(flags)}`),
    ...Object.entries(model.subcommands).map(([name, words]) => `_drce_sub_${variable(name)}=${quote(words)}`),
    "",
    "# The ids and aliases of the node's tasks, from `drce ls` against the node the line names.",
    "_drce_task_refs() {",
    "  local -a args=()",
    "  local i",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    case \"${COMP_WORDS[i]}\" in",
    `      ${connectionFlags.join("|")}) args+=(\"\${COMP_WORDS[i]}\" \"\${COMP_WORDS[i+1]}\") ;;`,
    "    esac",
    "  done",
    "  \"${COMP_WORDS[0]}\" ls --connect-timeout 1 \"${args[@]}\" 2>/dev/null | awk 'NR > 1 { print $1; if ($2 != \"-\") print $2 }'",
    "}",
    "",
    "_drce() {",
    "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" command=\"\" at=0 i word",
    "  COMPREPLY=()",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    word=\"${COMP_WORDS[i]}\"",
    "    if [[ $word == -* ]]; then",
    "      [[ \" $_drce_value_flags \" == *\" $word \"* ]] && ((i++))",
    "      continue",
    "    fi",
    "    command=$word at=$i",
    "    break",
    "  done",
    "  if [[ $COMP_CWORD -gt 1 && \" $_drce_value_flags \" == *\" $prev \"* ]]; then",
    "    COMPREPLY=($(compgen -f -- \"$cur\"))",
    "    return",
    "  fi",
    "  if [[ -z $command ]]; then",
    "    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$_drce_global_flags\" -- \"$cur\"))",
    "    else COMPREPLY=($(compgen -W \"$_drce_commands\" -- \"$cur\")); fi",
    "    return",
    "  fi",
    "  case $command in",
    "    help) COMPREPLY=($(compgen -W \"$_drce_commands\" -- \"$cur\")); return ;;",
    "    completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")); return ;;",
    "  esac",
    "  local flags_name=\"_drce_flags_${command//[^A-Za-z0-9]/_}\" sub_name=\"_drce_sub_${command//[^A-Za-z0-9]/_}\"",
    "  if [[ $cur == -* ]]; then",
    "    COMPREPLY=($(compgen -W \"${!flags_name}\" -- \"$cur\"))",
    "    return",
    "  fi",
    "  if [[ -n ${!sub_name} && $COMP_CWORD -eq $((at + 1)) ]]; then",
    "    COMPREPLY=($(compgen -W \"${!sub_name}\" -- \"$cur\"))",
    "    return",
    "  fi",
    "  if [[ \" $_drce_task_commands \" == *\" $command \"* ]]; then",
    "    COMPREPLY=($(compgen -W \"$(_drce_task_refs)\" -- \"$cur\"))",
    "  fi",
    "}",
    "complete -o default -F _drce drce",
    "",
  ];
  return lines.join("\n");
}

/** The zsh completion script: the bash one, through zsh's bashcompinit. */
export function zshCompletion(model: CompletionModel): string {
  return [
    "# zsh completion for drce (drce completion zsh); load with: source <(drce completion zsh)",
    "autoload -U +X compinit && compinit",
    "autoload -U +X bashcompinit && bashcompinit",
    bashCompletion(model),
  ].join("\n");
}

/**
 * `drce completion bash|zsh`: prints the completion script of the shell, made from the
 * command table given (the CLI's own) and the serve options table.
 */
export async function completionCommand(argv: string[], io: CliIo, commands: Readonly<Record<string, CompletableCommand>>): Promise<number> {
  const { values, positionals } = parseOptions(argv, { help: { type: "boolean", short: "h" } });
  if (values.help === true) {
    await writeBytes(io.stdout, `${completionUsage}\n`);
    return 0;
  }
  const shell = positionals[0];
  if (positionals.length !== 1 || (shell !== "bash" && shell !== "zsh")) throw new UsageError(`name the shell: bash or zsh${shell === undefined ? "" : ` (got ${JSON.stringify(positionals.join(" "))})`}`);
  // The serve table loads the node's option parsers; only this command needs it, so it is loaded here.
  const { serveOptions } = await import("../serve-options.js");
  const serveFlags = Object.values(serveOptions).flatMap((option) => [
    { flag: option.flag, takesValue: option.arg !== undefined },
    ...(option.off === undefined ? [] : [{ flag: option.off.flag, takesValue: false }]),
    ...(option.fromFile === undefined ? [] : [{ flag: option.fromFile.flag, takesValue: true }]),
  ]);
  serveFlags.push({ flag: "config", takesValue: true });
  const model = completionModel(commands, serveFlags);
  await writeBytes(io.stdout, shell === "bash" ? bashCompletion(model) : zshCompletion(model));
  return 0;
}
