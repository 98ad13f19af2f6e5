" Vim/Neovim syntax for the infra language (docs/language.md).
" Install: copy docs/editors/vim/ into ~/.config/nvim/ (or ~/.vim/), or
" `set runtimepath+=/path/to/infra/docs/editors/vim`.
if exists("b:current_syntax")
  finish
endif

" a block of a kind: `postgres main {`
syn match infraInstance "^\s*\zs[A-Za-z_][A-Za-z0-9_-]*\ze\s\+[A-Za-z_][A-Za-z0-9_-]*\s*{"
syn keyword infraItem import let kind
" words that are also attribute names (`failover = office`, `user = "www-data"`)
" are keywords only where they start a block
syn match infraBlock "^\s*\zs\(host\|failover\|admin\)\ze\s\+[A-Za-z_]"
syn match infraResource "^\s*\zs\(package\|user\|directory\|file\|unit\|dropin\|step\|release\)\ze\s\+\""
syn keyword infraBoolean true false
syn keyword infraBuiltin all
syn match infraType "\(:\s*\[\?\)\@<=\<\(string\|text\|user\|int\|uint\|port\|bool\|duration\|calendar\|ip\|cidr\|host\|failover\|placement\|secret\|check\|ref\)\>"
syn match infraCall "\<\(secret\|http\|tcp\|exec\)\ze("
syn match infraName "\<[A-Za-z_][A-Za-z0-9_-]*\>" contained
syn match infraAttr "^\s*\zs[A-Za-z_][A-Za-z0-9_-]*\ze\s*="
syn match infraNumber "\<\d\+\>"
syn match infraComment "#.*$" contains=@Spell
syn region infraString start=+"+ skip=+\\\\\|\\"+ end=+"\|$+ contains=infraEscape,infraInterp
syn match infraEscape "\\[nt"\\$]" contained
syn region infraInterp matchgroup=infraInterpDelim start="\${" end="}" contained contains=infraName,infraBuiltin

hi def link infraItem Keyword
hi def link infraBlock Keyword
hi def link infraResource Statement
hi def link infraBoolean Boolean
hi def link infraBuiltin Constant
hi def link infraType Type
hi def link infraCall Function
hi def link infraName Identifier
hi def link infraInstance Structure
hi def link infraAttr Identifier
hi def link infraNumber Number
hi def link infraComment Comment
hi def link infraString String
hi def link infraEscape SpecialChar
hi def link infraInterpDelim Delimiter

let b:current_syntax = "infra"
