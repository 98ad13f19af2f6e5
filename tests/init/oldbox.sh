#!/bin/sh
# An "old server" as an office has it (tests/suite/init.rs): a PHP application
# under nginx, PostgreSQL with two databases and the app's role, a crontab
# nobody remembers (a user's and one in /etc/cron.d, with MAILTO, */5, ranges,
# a list and @reboot). Run as root inside a lab host.
set -eu

mkdir -p /var/www/shop/public/uploads /var/www/shop/var/cache /var/www/shop/bin
printf '<?php echo "shop\\n";\n' > /var/www/shop/public/index.php
printf '<?php echo "queue\\n";\n' > /var/www/shop/bin/queue.php
chown -R www-data:www-data /var/www/shop/public/uploads /var/www/shop/var
cat > /etc/nginx/sites-available/shop <<'NGINX'
server {
    listen 80;
    server_name shop.example.com www.shop.example.com;
    root /var/www/shop/public;   # the front controller
    index index.php;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }
    location ~ \.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }
}
NGINX
ln -sf /etc/nginx/sites-available/shop /etc/nginx/sites-enabled/shop
systemctl enable --now php8.2-fpm.service nginx.service

systemctl enable --now postgresql@15-main.service
for i in $(seq 1 50); do
  runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break
  [ "$i" = 50 ] && { echo "oldbox: PostgreSQL did not start within 10 s" >&2; exit 1; }
  sleep 0.2
done
runuser -u postgres -- psql -q -c "create role shop login password 'old-secret'"
runuser -u postgres -- createdb -O shop shop
runuser -u postgres -- createdb reports

mkdir -p /var/spool/cron/crontabs
cat > /var/spool/cron/crontabs/www-data <<'CRON'
# m h  dom mon dow   command
MAILTO=office@shop.example.com
*/5 * * * * php /var/www/shop/bin/queue.php
30 7-19 * * 1-5 php /var/www/shop/bin/report.php --daily
@reboot /usr/local/bin/warm-cache
CRON
chmod 600 /var/spool/cron/crontabs/www-data
chown www-data /var/spool/cron/crontabs/www-data
cat > /etc/cron.d/housekeeping <<'CRON'
MAILTO=root
15 3 * * 0 postgres pg_dump shop > /var/backups/shop.sql
0 4 1,15 * * root find /tmp -name 'sess_*' -mtime +7 -delete
CRON
