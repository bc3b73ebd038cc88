"""DNA profiles: STR loci, alleles and genotypes, the Prüm matching rules, and index keys."""
