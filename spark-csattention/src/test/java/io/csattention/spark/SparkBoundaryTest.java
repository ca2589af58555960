package io.csattention.spark;

import com.tngtech.archunit.ArchConfiguration;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** io.csattention.spark is the only package that touches Spark or Hadoop; the formats stay plain Java streams. */
class SparkBoundaryTest {

    /** Imports this module's classes only; the Spark classes they name need not be loaded to check the rule. */
    @Test
    void onlyTheSparkPackageImportsSparkOrHadoop() {
        ArchConfiguration config = ArchConfiguration.get();
        boolean resolve = config.resolveMissingDependenciesFromClassPath();
        config.setResolveMissingDependenciesFromClassPath(false);
        JavaClasses classes;
        try {
            classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                    .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
                    .importPackages("io.csattention");
        } finally {
            config.setResolveMissingDependenciesFromClassPath(resolve);
        }
        noClasses().that().resideOutsideOfPackage("io.csattention.spark..")
                .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..", "org.apache.hadoop..",
                        "scala..")
                .check(classes);
    }
}
