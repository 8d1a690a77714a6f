// Runs a command on a drce node through the legacy DRCE protocol over ZeroMQ, framed as the
// original PHP and Python clients framed it: a DEALER with an identity sends [id, body] and
// gets [id, body] back, body being the JSON array of result items.
//
//   node zmq-client.mjs 'uname -s'      # prints the result item, then the decoded stdout
//
// Needs the zeromq package (a dependency of drce; elsewhere `npm install zeromq`). The
// node's ZeroMQ gateway is $DRCE_ZMQ (default tcp://127.0.0.1:5557); $DRCE_TOKEN, when set,
// is sent as the PLAIN password, as a node with --token requires.
import { Dealer } from "zeromq";

const command = process.argv[2] ?? "echo hello from drce";
const endpoint = process.env.DRCE_ZMQ ?? "tcp://127.0.0.1:5557";

const dealer = new Dealer({ routingId: `example-${process.pid}`, linger: 0, receiveTimeout: 30_000 });
if (process.env.DRCE_TOKEN) {
  dealer.plainUsername = "drce";
  dealer.plainPassword = process.env.DRCE_TOKEN;
}
dealer.connect(endpoint);

// type 0 sets a task; tmode 1 is sync: the reply comes when the task is done.
const data = Buffer.from(JSON.stringify({ session: { tmode: 1 }, command })).toString("base64");
await dealer.send(["1", JSON.stringify({ type: 0, id: 4242, data })]);
const [id, body] = await dealer.receive();
const [item] = JSON.parse(body.toString());
console.log(`reply ${id.toString()}: id=${item.id} state=${item.state} exit_status=${item.exit_status} error_code=${item.error_code}`);
process.stdout.write(Buffer.from(item.stdout, "base64"));
dealer.close();
