<?php
// migrate: runs once per release, on the member holding the virtual IP, before
// its switch (on a first deploy, once the database and the role exist). The
// schema of this version, and a row in `migrations` saying it ran.
declare(strict_types=1);

require dirname(__DIR__) . '/lib/db.php';

$version = trim((string) file_get_contents(dirname(__DIR__) . '/VERSION'));
// On a first deploy the member may still be taking the VIP and promoting its
// database: wait for it (at most 60 s).
for ($waited = 0;; $waited++) {
    try {
        $db = db();
        break;
    } catch (PDOException $e) {
        if ($waited >= 60) {
            fwrite(STDERR, "no database after 60 s: {$e->getMessage()}\n");
            exit(1);
        }
        sleep(1);
    }
}
$db->beginTransaction();
$db->exec('CREATE TABLE IF NOT EXISTS migrations (id serial PRIMARY KEY, version text NOT NULL, at timestamptz NOT NULL DEFAULT now())');
$db->exec('CREATE TABLE IF NOT EXISTS invoices (name text PRIMARY KEY, bytes integer NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())');
$db->prepare('INSERT INTO migrations (version) VALUES (?)')->execute([$version]);
$db->commit();
echo "migrated to $version\n";
