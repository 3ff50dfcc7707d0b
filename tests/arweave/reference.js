// What arweave-js, the reference client, makes of imagegen's Arweave work. Reads JSON on stdin:
//   {"data": [base64...], "transactions": [transaction JSON...]}
// and prints {"chunks": [{"data_root", "proofs": [{"offset", "proof"}]}...], "verified": [bool...]}.
const Arweave = require("arweave");
const { generateTransactionChunks } = require("arweave/node/lib/merkle");

const arweave = Arweave.init({});
const b64url = (bytes) => Arweave.utils.bufferTob64Url(bytes);

async function main() {
  let input = "";
  for await (const part of process.stdin) input += part;
  const { data = [], transactions = [] } = JSON.parse(input);
  const chunks = [];
  for (const encoded of data) {
    const prepared = await generateTransactionChunks(Buffer.from(encoded, "base64"));
    chunks.push({
      data_root: b64url(prepared.data_root),
      proofs: prepared.proofs.map((p) => ({ offset: p.offset, proof: b64url(p.proof) })),
    });
  }
  const verified = [];
  for (const raw of transactions) {
    verified.push(await arweave.transactions.verify(arweave.transactions.fromRaw(raw)));
  }
  process.stdout.write(JSON.stringify({ chunks, verified }) + "\n");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
