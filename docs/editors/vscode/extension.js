// Starts `infra lsp` for .infra files (docs/editors.md).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("infra").get("path") || "infra";
  client = new LanguageClient(
    "infra",
    "infra",
    { command, args: ["lsp"] },
    { documentSelector: [{ scheme: "file", language: "infra" }] }
  );
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
