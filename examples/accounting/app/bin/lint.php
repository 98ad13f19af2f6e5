<?php
// before_switch: every PHP file of the new release parses; a release that does
// not is never switched in (infra stops the roll with nothing changed there).
declare(strict_types=1);

$bad = 0;
$files = new RecursiveIteratorIterator(
    new RecursiveDirectoryIterator(dirname(__DIR__), FilesystemIterator::SKIP_DOTS)
);
foreach ($files as $f) {
    if ($f->getExtension() !== 'php') {
        continue;
    }
    $out = [];
    exec('php -l ' . escapeshellarg($f->getPathname()) . ' 2>&1', $out, $rc);
    if ($rc !== 0) {
        echo implode("\n", $out), "\n";
        $bad++;
    }
}
exit($bad > 0 ? 1 : 0);
