// Live updates of pages marked data-live (see live.go).
