import { useState } from "preact/hooks";
import { useApi, useNode } from "../api.js";
import { RunOutcome } from "../run/run-outcome.js";
import { emptyRunForm, RunFormError, runRequestOf, type RunFormValues, type RunRequest, type Targeting } from "../run/run-spec.js";
import "../run/run.css";

/** The choices of where a manager runs the task, with the words the form shows. */
const targetings: readonly { readonly value: Targeting; readonly title: string }[] = [
  { value: "manager", title: "One node, the manager's choice" },
  { value: "all", title: "Every node" },
  { value: "nodes", title: "These nodes" },
  { value: "labels", title: "Nodes with these labels" },
];

/**
 * The Run view: a form for a command (a shell line or an argument vector, environment,
 * working directory, timeout, stdin), run attached or submitted; on a manager also where it
 * runs (one node, every node, named nodes, a label selector) and a fan-out's rate controls.
 * Below the form, the run: its output live and its exit status, or a fan-out's progress per
 * node, or a link to the submitted task.
 */
export function RunView() {
  const api = useApi();
  const node = useNode();
  const manager = node.role === "manager";
  const [values, setValues] = useState<RunFormValues>(emptyRunForm);
  const [invalid, setInvalid] = useState<RunFormError | undefined>(undefined);
  const [run, setRun] = useState<{ readonly key: number; readonly request: RunRequest } | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof RunFormValues>(key: K, value: RunFormValues[K]): void => setValues((current) => ({ ...current, [key]: value }));
  const text = (key: keyof RunFormValues) => (event: Event) => set(key, (event.currentTarget as HTMLInputElement | HTMLTextAreaElement).value as never);
  const submit = (event: Event): void => {
    event.preventDefault();
    let request: RunRequest;
    try {
      request = runRequestOf(values, manager);
    } catch (error) {
      if (!(error instanceof RunFormError)) throw error;
      setInvalid(error);
      document.getElementById(error.field)?.focus();
      return;
    }
    setInvalid(undefined);
    setBusy(true);
    setRun((current) => ({ key: (current?.key ?? 0) + 1, request }));
  };
  const problem = (field: string) => (invalid?.field === field ? { "aria-invalid": true, "aria-describedby": "run-form-error" } : {});
  const fanOutChosen = values.targeting !== "manager";
  return (
    <section aria-labelledby="run-title" class="run-view">
      <h1 id="run-title">Run</h1>
      <form class="card run-form" onSubmit={submit} aria-label="Command to run">
        <fieldset class="run-choice">
          <legend>Command as</legend>
          <label>
            <input type="radio" name="run-form" checked={values.form === "shell"} onChange={() => set("form", "shell")} /> a shell line
          </label>
          <label>
            <input type="radio" name="run-form" checked={values.form === "argv"} onChange={() => set("form", "argv")} /> an argument vector, one word a line
          </label>
        </fieldset>
        <label class="run-field">
          {values.form === "shell" ? "Command line" : "Program and arguments"}
          <textarea id="run-command" class="mono" rows={values.form === "shell" ? 2 : 4} value={values.command} onInput={text("command")} spellcheck={false} placeholder={values.form === "shell" ? "make -j4 && make test" : "ls\n-l\n/tmp"} {...problem("run-command")} />
        </label>
        <div class="run-row">
          <label class="run-field">
            Environment (NAME=VALUE a line)
            <textarea id="run-env" class="mono" rows={2} value={values.env} onInput={text("env")} spellcheck={false} {...problem("run-env")} />
          </label>
          <label class="run-field">
            Stdin
            <textarea id="run-stdin" class="mono" rows={2} value={values.stdin} onInput={text("stdin")} spellcheck={false} />
          </label>
        </div>
        <div class="run-row">
          <label class="run-field">
            Working directory
            <input id="run-work-dir" class="mono" value={values.workDir} onInput={text("workDir")} placeholder="the task's own" />
          </label>
          <label class="run-field">
            Timeout, seconds
            <input id="run-timeout" inputMode="numeric" value={values.timeout} onInput={text("timeout")} placeholder="none" {...problem("run-timeout")} />
          </label>
        </div>
        <fieldset class="run-choice">
          <legend>Run</legend>
          <label>
            <input type="radio" name="run-mode" checked={!values.async} onChange={() => set("async", false)} /> attached: output here, live
          </label>
          <label>
            <input type="radio" name="run-mode" checked={values.async} onChange={() => set("async", true)} /> submitted: in the background
          </label>
        </fieldset>
        {manager && (
          <fieldset class="run-targeting">
            <legend>Where</legend>
            {targetings.map((choice) => (
              <label>
                <input type="radio" name="run-targeting" value={choice.value} checked={values.targeting === choice.value} onChange={() => set("targeting", choice.value)} /> {choice.title}
              </label>
            ))}
            {values.targeting === "nodes" && (
              <label class="run-field">
                Node names (separated by commas)
                <input id="run-nodes" class="mono" value={values.nodes} onInput={text("nodes")} placeholder="alpha,beta" {...problem("run-nodes")} />
              </label>
            )}
            {values.targeting === "labels" && (
              <label class="run-field">
                Label selector
                <input id="run-labels" class="mono" value={values.labels} onInput={text("labels")} placeholder="env=prod,os=linux" {...problem("run-labels")} />
              </label>
            )}
            <div class="run-row">
              <label class="run-field">
                Max concurrency (N or N%)
                <input id="run-max-concurrency" value={values.maxConcurrency} onInput={text("maxConcurrency")} placeholder={fanOutChosen ? "all at once" : "—"} {...problem("run-max-concurrency")} />
              </label>
              <label class="run-field">
                Max errors (N or N%)
                <input id="run-max-errors" value={values.maxErrors} onInput={text("maxErrors")} placeholder={fanOutChosen ? "never stop" : "—"} {...problem("run-max-errors")} />
              </label>
            </div>
          </fieldset>
        )}
        {invalid !== undefined && (
          <p class="error" id="run-form-error" role="alert">
            {invalid.message}
          </p>
        )}
        <div class="actions">
          <button type="submit" disabled={busy}>
            Run
          </button>
        </div>
      </form>
      {run !== undefined && <RunOutcome key={run.key} api={api} request={run.request} onEnded={() => setBusy(false)} />}
    </section>
  );
}
