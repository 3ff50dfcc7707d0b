// Starts arlocal on 127.0.0.1 and a port the system picks (its own CLI binds every interface and a fixed
// port), then prints {"port": N} on one line. Usage: node serve.js <database directory>
const http = require("http");
const ArLocal = require("arlocal").default;

const dbPath = process.argv[2];
if (!dbPath) {
  console.error("usage: node serve.js <database directory>");
  process.exit(2);
}

const node = new ArLocal(1984, false, dbPath, false);
node.app.listen = function (_port, onListening) {
  const server = http.createServer(this.callback());
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
    if (onListening) onListening();
  });
  return server;
};

const stop = async () => {
  await node.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
node.start().catch((error) => {
  console.error(error);
  process.exit(1);
});
