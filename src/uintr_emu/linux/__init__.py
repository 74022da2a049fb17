"""The Linux personality: loader, processes, scheduler, syscalls, signals."""
