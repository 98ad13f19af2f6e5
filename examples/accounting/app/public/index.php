<?php
// The accounting office's application (a small stand-in), deployed by infra as
// a release from this directory (docs/deploy.md). GET: its version and the
// stored invoices. POST ?name=NAME: store the request body as an invoice in
// uploads/, a shared directory (kept across releases, replicated to the other
// member by the `uploads` share).
declare(strict_types=1);

$version = trim((string) @file_get_contents(__DIR__ . '/../VERSION'));
$uploads = __DIR__ . '/../uploads';
header('Content-Type: text/plain; charset=utf-8');

if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = basename((string) ($_GET['name'] ?? ''));
    if ($name === '' || $name[0] === '.') {
        http_response_code(400);
        echo "give the invoice a name: ?name=inv-1.txt\n";
        exit;
    }
    if (file_put_contents("$uploads/$name", file_get_contents('php://input')) === false) {
        http_response_code(500);
        echo "cannot store $name\n";
        exit;
    }
    echo "stored $name\n";
    exit;
}

echo "accounting $version\n";
foreach (glob("$uploads/*") ?: [] as $f) {
    echo basename($f), "\n";
}
