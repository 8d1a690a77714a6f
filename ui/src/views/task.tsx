/** One task. */
export function TaskView(props: { readonly id: string }) {
  return <section aria-labelledby="task-title"><h1 id="task-title">Task {props.id}</h1></section>;
}
