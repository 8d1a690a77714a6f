/** The Nodes view's place in the console; the node's figures are yet to be shown here. */
export function NodesView() {
  return (
    <section aria-labelledby="nodes-title">
      <h1 id="nodes-title">Nodes</h1>
      <p>The nodes and their load come here.</p>
    </section>
  );
}
