au BufRead,BufNewFile *.infra setfiletype infra
