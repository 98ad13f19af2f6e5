<?php
// migrate: runs once per release, on the member holding the virtual IP, before
// its switch. A stand-in for the application's database migrations: it
// records the version it migrated to.
declare(strict_types=1);

$version = trim((string) file_get_contents(dirname(__DIR__) . '/VERSION'));
file_put_contents(dirname(__DIR__) . '/uploads/.migrations', "$version\n", FILE_APPEND);
echo "migrated to $version\n";
