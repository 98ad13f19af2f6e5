<?php
// The database connection, from the file infra writes for the application's
// role (postgres_user.accounting in ../main.infra): the VIP, the port, the
// database, the user and its password, readable only by www-data. Read at
// every request (not cached by opcache): a rotated password is used at once.
declare(strict_types=1);

const DATABASE_CONFIG = '/etc/accounting/database.json';

function db(): PDO
{
    for ($try = 1;; $try++) {
        $c = json_decode((string) file_get_contents(DATABASE_CONFIG), true, 4, JSON_THROW_ON_ERROR);
        $dsn = sprintf(
            'pgsql:host=%s;port=%d;dbname=%s;connect_timeout=5',
            $c['host'],
            $c['port'],
            $c['database']
        );
        try {
            return new PDO($dsn, $c['user'], $c['password'], [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        } catch (PDOException $e) {
            // While infra rotates the password, the role and this file change
            // a fraction of a second apart: read the file again and retry.
            if ($try < 4 && str_contains($e->getMessage(), 'password authentication failed')) {
                usleep(200000);
                continue;
            }
            throw $e;
        }
    }
}
