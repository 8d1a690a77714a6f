/** The Run view's place in the console; the form is yet to be built here. */
export function RunView() {
  return (
    <section aria-labelledby="run-title">
      <h1 id="run-title">Run</h1>
      <p>Running a command from the console comes here.</p>
    </section>
  );
}
