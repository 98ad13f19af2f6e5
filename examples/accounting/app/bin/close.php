<?php
// The monthly close (the `close_month` job runs it on the member holding the VIP).
declare(strict_types=1);

$count = count(glob(__DIR__ . '/../uploads/*') ?: []);
echo "closing the month: $count invoice(s)\n";
