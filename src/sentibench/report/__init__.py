"""Reading finished runs back and saying what they show: rows, statistics, comparisons,
tables, plots and the HTML report."""
