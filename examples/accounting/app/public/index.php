<?php
// The accounting office's application (a small stand-in), deployed by infra as
// a release from this directory (docs/deploy.md). GET: its version, the stored
// invoice files and the invoices' rows. POST ?name=NAME: store the request body
// as an invoice file in uploads/ (a shared directory, kept across releases and
// replicated to the other member by the `uploads` share) and a row in the
// database (through the VIP, as the role infra made for it).
declare(strict_types=1);

require __DIR__ . '/../lib/db.php';

$version = trim((string) @file_get_contents(__DIR__ . '/../VERSION'));
$uploads = __DIR__ . '/../uploads';
header('Content-Type: text/plain; charset=utf-8');

try {
    $db = db();
} catch (Throwable $e) {
    http_response_code(503);
    echo "database unavailable: ", $e->getMessage(), "\n";
    exit;
}

if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = basename((string) ($_GET['name'] ?? ''));
    if ($name === '' || $name[0] === '.') {
        http_response_code(400);
        echo "give the invoice a name: ?name=inv-1.txt\n";
        exit;
    }
    $body = (string) file_get_contents('php://input');
    if (file_put_contents("$uploads/$name", $body) === false) {
        http_response_code(500);
        echo "cannot store $name\n";
        exit;
    }
    $db->prepare('INSERT INTO invoices (name, bytes) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET bytes = EXCLUDED.bytes')
        ->execute([$name, strlen($body)]);
    echo "stored $name\n";
    exit;
}

echo "accounting $version\n";
foreach (glob("$uploads/*") ?: [] as $f) {
    echo basename($f), "\n";
}
foreach ($db->query('SELECT name, bytes FROM invoices ORDER BY name') as $row) {
    echo "row: {$row['name']} ({$row['bytes']} bytes)\n";
}
