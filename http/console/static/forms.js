// Form helpers: copy buttons, database search (progressive enhancement: forms work without it).
