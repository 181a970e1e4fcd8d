"""Readers for people's own data: COCO, attribute tables (CSV, CelebA), image folders, dense-label folders."""
