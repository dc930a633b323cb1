"""What turns the core's typed reports into files people read: PDFs with their tables and charts
(reportlab, matplotlib). Kept out of the pure core, which only builds the reports."""
