package io.csattention.architecture;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** The algorithm stays plain Java: only io.csattention.spark imports Spark, only kernel.cuda imports JCuda. */
@AnalyzeClasses(packages = "io.csattention", importOptions = ImportOption.DoNotIncludeTests.class)
class LayeringTest {

    private static final String[] ALGORITHM = {"io.csattention.core..", "io.csattention.baseline..",
            "io.csattention.format..", "io.csattention.model..", "io.csattention.eval.."};

    @ArchTest
    static final ArchRule algorithmDoesNotUseSpark = noClasses().that().resideInAnyPackage(ALGORITHM)
            .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..", "scala..");

    @ArchTest
    static final ArchRule algorithmDoesNotUseJcuda = noClasses().that().resideInAnyPackage(ALGORITHM)
            .should().dependOnClassesThat().resideInAnyPackage("jcuda..");

    @ArchTest
    static final ArchRule cpuKernelsDoNotUseSparkOrJcuda = noClasses().that().resideInAPackage("io.csattention.kernel")
            .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..", "jcuda..");

    @ArchTest
    static final ArchRule onlyTheSparkPackageUsesSpark = noClasses().that()
            .resideOutsideOfPackage("io.csattention.spark..")
            .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..");
}
