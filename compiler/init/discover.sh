#!/bin/sh
# infra init --from: what this machine runs, read in one pass. Read-only:
# nothing is written, installed, started or stopped here (no temporary file
# either). Each section starts with a line "<RS>NONCE infra-init NAME ARG"
# (NONCE is set before this script by infra: text read from the machine, a
# database name say, cannot forge a section); a file's content is cut at
# 256 KiB (a section "cut PATH" says so); the commands that may wait are bounded
# by timeout.
S="$(printf '\036')${NONCE-}"
sec() { printf '%s infra-init %s %s\n' "$S" "$1" "${2-}"; }
show() {
  if [ -f "$1" ] && [ -r "$1" ]; then
    sec file "$1"
    head -c 262144 "$1"
    echo
    if [ "$(wc -c <"$1")" -gt 262144 ]; then sec cut "$1"; fi
  fi
}
t() { timeout 10 "$@" 2>/dev/null; }

sec os
cat /etc/os-release 2>/dev/null
sec hostname
hostname 2>/dev/null || cat /etc/hostname 2>/dev/null
sec addr
ip -o -4 addr show 2>/dev/null
sec route
ip -4 route show default 2>/dev/null
sec neigh
ip -4 neigh show 2>/dev/null
sec packages
dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Abbrev}\n' 2>/dev/null
# enabled units: the links in the .wants directories (what `systemctl enable`
# makes; `systemctl list-unit-files` takes over a second to say the same)
enabled=$(
  for f in /etc/systemd/system/*.wants/*.service /etc/systemd/system/*.wants/*.timer; do
    case $f in *'*'*) ;; *) echo "${f##*/}" ;; esac
  done | sort -u
)
sec services
printf '%s\n' "$enabled" | grep '\.service$'
sec ports
ss -Hltnp 2>/dev/null
sec mounts
findmnt -rn -o TARGET,SOURCE,FSTYPE 2>/dev/null
sec passwd
t getent passwd | head -n 5000

# timers: each enabled one with its schedule, command and unit file
sec timers
timers=$(printf '%s\n' "$enabled" | grep '\.timer$')
for u in $timers; do
  printf '%s\t%s\t%s\t%s\n' "$u" \
    "$(t systemctl show -P FragmentPath "$u")" \
    "$(t systemctl show -P TimersCalendar "$u" | tr '\n' ' ')" \
    "$(t systemctl show -P ExecStart "$(t systemctl show -P Triggers "$u")" | tr '\n' ' ')"
done

# crontabs: the system's, /etc/cron.d, every user's, anacron's
for f in /etc/crontab /etc/anacrontab /etc/cron.d/*; do show "$f"; done
for f in /var/spool/cron/crontabs/*; do show "$f"; done
for d in hourly daily weekly monthly; do
  for f in "/etc/cron.$d"/*; do
    # run-parts runs executable files only
    if ! [ -f "$f" ] || ! [ -x "$f" ]; then continue; fi
    sec runparts "$f"
    head -c 16384 "$f"
    echo
  done
done

# which of those files (and the timers') a package installed
sec owned
{
  ls -d /etc/cron.d/* /etc/cron.hourly/* /etc/cron.daily/* /etc/cron.weekly/* \
    /etc/cron.monthly/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
    /etc/apache2/sites-enabled/* /etc/php/*/fpm/pool.d/* 2>/dev/null
  for u in $timers; do
    t systemctl show -P FragmentPath "$u"
  done
} | while read -r p; do
  echo "$p"
  readlink -f "$p"
done | grep -Fx -h -f /dev/stdin /var/lib/dpkg/info/*.list 2>/dev/null
sec links
for p in /etc/nginx/sites-enabled/* /etc/apache2/sites-enabled/*; do
  [ -L "$p" ] && printf '%s\t%s\n' "$p" "$(readlink -f "$p")"
done

# web servers and PHP
for f in /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf; do show "$f"; done
for f in /etc/apache2/sites-enabled/*.conf; do show "$f"; done
for f in /etc/php/*/fpm/pool.d/*.conf; do show "$f"; done

# databases: PostgreSQL clusters and their databases, MariaDB's
sec pg_clusters
t pg_lsclusters -h
if command -v pg_lsclusters >/dev/null 2>&1; then
  t pg_lsclusters -h | while read -r ver name port status rest; do
    case $status in online*) ;; *) continue ;; esac
    sec pg_databases "$ver $name $port"
    PGCONNECT_TIMEOUT=3 t runuser -u postgres -- psql -p "$port" -AtXq -F '	' -c \
      "select datname, pg_database_size(datname), pg_get_userbyid(datdba) from pg_database where not datistemplate order by 1"
    sec pg_roles "$ver $name $port"
    PGCONNECT_TIMEOUT=3 t runuser -u postgres -- psql -p "$port" -AtXq -c \
      "select rolname from pg_roles where rolcanlogin and rolname <> 'postgres' order by 1"
  done
fi
if command -v mariadb >/dev/null 2>&1 && t mariadb --connect-timeout=3 -N -B -e 'select 1' >/dev/null; then
  sec my_databases
  t mariadb --connect-timeout=3 -N -B -e \
    "select s.schema_name, coalesce(sum(t.data_length + t.index_length), 0) from information_schema.schemata s left join information_schema.tables t on t.table_schema = s.schema_name where s.schema_name not in ('mysql', 'information_schema', 'performance_schema', 'sys') group by s.schema_name order by 1"
  sec my_users
  t mariadb --connect-timeout=3 -N -B -e \
    "select distinct user from mysql.user where user not in ('root', 'mysql', 'mariadb.sys', '') order by 1"
fi

# the directories the web users can write under the sites' roots and /srv, /var/www
users=www-data
for f in /etc/php/*/fpm/pool.d/*.conf; do
  [ -f "$f" ] || continue
  u=$(sed -n 's/^[[:space:]]*user[[:space:]]*=[[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$f" | head -n 1)
  case " $users " in *" $u "* | "  ") ;; *) users="$users $u" ;; esac
done
# a site's directory from its document root, so an uploads/ beside public/ is seen
roots=$(
  {
    {
      sed -n 's/^[[:space:]]*root[[:space:]]\{1,\}\([^;[:space:]]*\)[[:space:]]*;.*/\1/p' \
        /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf 2>/dev/null
      sed -n 's/^[[:space:]]*DocumentRoot[[:space:]]\{1,\}"\{0,1\}\([^"[:space:]]*\).*/\1/p' \
        /etc/apache2/sites-enabled/*.conf 2>/dev/null
    } | sed 's#^\(/[^/]\{1,\}/[^/].*\)/\(public\|web\|htdocs\|html\|www\|pub\)/*$#\1#'
    echo /srv
    echo /var/www
  } | sort -u | awk '{ for (i = 1; i <= n; i++) if (index($0, r[i] "/") == 1) next; r[++n] = $0; print }'
)
sec writable "$users"
for u in $users; do
  for r in $roots; do
    [ -d "$r" ] || continue
    timeout 30 find "$r" -xdev -maxdepth 6 -type d -user "$u" -print -prune 2>/dev/null | head -n 200 |
      while read -r d; do printf '%s\t%s\n' "$u" "$d"; done
  done
done
sec end
